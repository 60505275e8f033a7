EVAL_PARAMS = dict(
    samples_per_name=EVAL["samples_per_name"],
    folds=FOLDS,  # each fold's evaluated names (the reference answers fold by fold too)
    ablation=EVAL["head_ablation"],
    sampling=config["sampling"],
    dtype=model_setting("dtype"),
    device=model_setting("device"),
    perplexity_max_tokens=EVAL["perplexity_max_tokens"],
)


# One evaluation job per target (the reference) and per (mask source, target): editing one
# context's prompts reruns only its evaluations as a target and those of the masks learned
# from it (directly or in a pool), not every evaluation. Each job loads the model once.
rule evaluate_reference:
    input:
        model=MODEL_DIR,
        prompts="results/prompts/{target}.parquet",
        text=data_path(EVAL["perplexity_text"]),
    output:
        answers="results/eval/{model}/reference/{target}.parquet",
        info="results/eval/{model}/reference/{target}.json",
    params:
        code=CODE_VERSIONS["evaluate_reference"],
        contexts=target_spec,
        **EVAL_PARAMS,
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/{model}/evaluate_reference/{target}.log",
    benchmark:
        "results/benchmarks/{model}/evaluate_reference/{target}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/evaluate_reference.py"


rule evaluate_pruned:
    input:
        masks=source_masks,
        model=MODEL_DIR,
        prompts="results/prompts/{target}.parquet",
        text=data_path(EVAL["perplexity_text"]),
    output:
        answers=[f"results/eval/{{model}}/{m}/{s}/{{source}}/{{target}}.parquet" for m, s in EVAL_MASKS],
        info=[f"results/eval/{{model}}/{m}/{s}/{{source}}/{{target}}.json" for m, s in EVAL_MASKS],
    params:
        code=CODE_VERSIONS["evaluate_pruned"],
        masks=lambda wc: {f"{m}/{s}": eval_masks(wc.model, m, s, wc.source) for m, s in EVAL_MASKS},
        contexts=target_spec,
        **EVAL_PARAMS,
    wildcard_constraints:
        source=one_of(s.name for s in PLAN.sources()),
    threads: RES["model_threads"]
    resources:
        **model_resources(masks=max(1, len(DRAWS))),
    log:
        "logs/{model}/evaluate_pruned/{source}/{target}.log",
    benchmark:
        "results/benchmarks/{model}/evaluate_pruned/{source}/{target}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/evaluate_pruned.py"


rule aggregate_transfer:
    input:
        info=all_evaluations(),
        reference=expand("results/eval/{{model}}/reference/{target}.json", target=CONTEXTS),
        baseline=expand("results/baseline/{{model}}/{context}.parquet", context=CONTEXTS),
        bias="results/tables/{model}/baseline_bias.csv",
    output:
        table=report(
            "results/tables/{model}/transfer.csv",
            caption="../report/transfer_table.rst",
            category="Transfer",
        ),
        controls=report(
            "results/tables/{model}/transfer_controls.csv",
            caption="../report/controls_table.rst",
            category="Transfer",
        ),
        heatmaps=report(
            [
                f"results/plots/{{model}}/transfer_{kind}__{setting.name}.png"
                for kind in KINDS
                for setting in PLAN.settings(kind)
            ],
            caption="../report/heatmap.rst",
            category="Transfer",
            subcategory="Heatmaps",
        ),
        levels=report(
            "results/plots/{model}/reduction_by_level.png",
            caption="../report/levels.rst",
            category="Transfer",
        ),
        **dose_output(),
        vector=transfer_svgs(),
    params:
        code=CODE_VERSIONS["aggregate_transfer"],
        contexts=list(CONTEXTS),
        scenarios=dict(PLAN.scenarios),
        pools=PLAN.pool_info(),
        heatmaps=[(kind, setting.name) for kind in KINDS for setting in PLAN.settings(kind)],
        winsorize=config["analysis"]["winsorize"],
        n_boot=config["analysis"]["n_boot"],
        effect=config["analysis"]["effect"],
        seed=config["seed"],
        inlier_percentiles=EVAL["inlier_percentiles"],
        folds=FOLDS,
    log:
        "logs/{model}/aggregate_transfer.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/aggregate_transfer.py"
