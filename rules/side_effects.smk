# Side effects of selected masks on lm-evaluation-harness tasks (prunebias.report.side_effects):
# the unpruned model, each mask under side_effects.masks and its first matched random
# control answer the same items; the table pairs them.

SIDE = config["side_effects"]
SIDE_MASKS = side_effects.mask_ids(SIDE["masks"], EVAL["random_controls"])


rule measure_side_effects:
    input:
        model=MODEL_DIR,
        masks=[side_effects.mask_file(m) for m in SIDE_MASKS],  # patterns: {model} of the job
        task_yamls=[t for t in SIDE_TASKS if side_effects.is_task_file(t)],  # resolved where they are
        tasks=SIDE_TASK_FILES,
    output:
        per_item="results/side_effects/{model}/items.parquet",
        table=report(
            "results/tables/{model}/side_effects.csv",
            caption="../report/side_effects.rst",
            category="Side effects",
        ),
    params:
        code=CODE_VERSIONS["measure_side_effects"],
        tasks=SIDE["tasks"],  # as configured: a copy of the project elsewhere plans nothing new
        masks=SIDE_MASKS,
        limit=SIDE["limit"],
        batch_size=SIDE["batch_size"],
        bootstrap_iters=SIDE["bootstrap_iters"],
        n_boot=config["analysis"]["n_boot"],
        seed=config["seed"],
        ablation=EVAL["head_ablation"],
        dtype=model_setting("dtype"),
        device=model_setting("device"),
    threads: RES["model_threads"]
    resources:
        **model_resources(masks=1),
    log:
        "logs/{model}/measure_side_effects.log",
    benchmark:
        "results/benchmarks/{model}/measure_side_effects.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/measure_side_effects.py"


rule plot_side_effects:
    input:
        table=report(
            "results/tables/{model}/side_effects.csv",
            caption="../report/side_effects.rst",
            category="Side effects",
        ),
        transfer="results/tables/{model}/transfer.csv",
    output:
        report(
            "results/plots/{model}/side_effects.png",
            caption="../report/side_effects.rst",
            category="Side effects",
        ),
        svg="results/plots/{model}/side_effects.svg",
    params:
        code=CODE_VERSIONS["plot_side_effects"],
    log:
        "logs/{model}/plot_side_effects.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/plot_side_effects.py"
