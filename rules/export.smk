rule export_pruned_model:
    input:
        model=MODEL_DIR,
        mask=mask_path(),
        transfer="results/tables/{model}/transfer.csv",
    output:
        directory("results/export/{model}/{kind}/{setting}/{source}"),
    params:
        code=CODE_VERSIONS["export_pruned_model"],
        ablation=EVAL["head_ablation"],
        learn_names=len(LEARN_NAMES) if LEARN_NAMES else None,
    wildcard_constraints:
        kind=ANY_KIND,
        source=one_of(s.name for s in PLAN.sources()),
    threads: RES["model_threads"]
    resources:  # on the CPU: nothing here needs a GPU
        mem_mb=lambda wc, attempt: resources.model_mem({**RES, "gpu": 0}, "infer", MODEL_DIR.format(model=wc.model),
                                                       SOURCE_SIZES[wc.model], "auto", "cpu", masks=1)(wc, attempt),
        **resources.light_resources(RES),
    log:
        "logs/{model}/export_pruned_model/{kind}/{setting}/{source}.log",
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/export_pruned_model.py"
