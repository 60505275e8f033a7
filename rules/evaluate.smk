EVAL_PARAMS = dict(
    contexts={c: CONTEXTS[c].spec() for c in CONTEXTS},
    samples_per_name=EVAL["samples_per_name"],
    eval_names=EVAL_NAMES,
    ablation=EVAL["head_ablation"],
    sampling=config["sampling"],
    dtype=config["model"]["dtype"],
    device=config["model"]["device"],
    perplexity_max_tokens=EVAL["perplexity_max_tokens"],
)


rule evaluate_reference:
    input:
        masks=[],
        model=MODEL_DIR,
        prompts=expand("results/prompts/{context}.parquet", context=CONTEXTS),
        text=data_path(EVAL["perplexity_text"]),
    output:
        answers=expand("results/eval/reference/{target}.parquet", target=CONTEXTS),
        info="results/eval/reference/info.json",
    params:
        method="reference",
        setting="none",
        source="none",
        **EVAL_PARAMS,
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/evaluate_reference.log",
    benchmark:
        "results/benchmarks/evaluate_reference.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/evaluate_pruned.py"


rule evaluate_pruned:
    input:
        masks=eval_masks,
        model=MODEL_DIR,
        prompts=expand("results/prompts/{context}.parquet", context=CONTEXTS),
        text=data_path(EVAL["perplexity_text"]),
    output:
        answers=expand("results/eval/{{method}}/{{variant}}/{{source}}/{target}.parquet", target=CONTEXTS),
        info="results/eval/{method}/{variant}/{source}/info.json",
    params:
        method=lambda wc: wc.method,
        setting=lambda wc: wc.variant,
        source=lambda wc: wc.source,
        **EVAL_PARAMS,
    wildcard_constraints:
        method="|".join(METHODS),
        source="|".join(re.escape(s) for s in ALL_SOURCES),
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/evaluate_pruned/{method}/{variant}/{source}.log",
    benchmark:
        "results/benchmarks/evaluate_pruned/{method}/{variant}/{source}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/evaluate_pruned.py"


rule aggregate_transfer:
    input:
        info=all_evaluations(),
        reference="results/eval/reference/info.json",
        baseline=expand("results/baseline/{context}.parquet", context=CONTEXTS),
    output:
        table=report(
            "results/tables/transfer.csv",
            caption="../report/transfer_table.rst",
            category="Transfer",
        ),
        controls=report(
            "results/tables/transfer_controls.csv",
            caption="../report/controls_table.rst",
            category="Transfer",
        ),
        heatmaps=report(
            [
                f"results/plots/transfer_{kind}__{variant}.png"
                for kind, variants in KIND_VARIANTS.items()
                for variant in variants
            ],
            caption="../report/heatmap.rst",
            category="Transfer",
            subcategory="Heatmaps",
        ),
        levels=report(
            "results/plots/reduction_by_level.png",
            caption="../report/levels.rst",
            category="Transfer",
        ),
        dose=report(
            "results/plots/dose_response.png",
            caption="../report/dose.rst",
            category="Transfer",
        ),
    params:
        contexts=list(CONTEXTS),
        pools=POOL_INFO,
        winsorize=config["analysis"]["winsorize"],
        n_boot=config["analysis"]["n_boot"],
        effect=config["analysis"]["effect"],
        seed=config["seed"],
        inlier_percentiles=EVAL["inlier_percentiles"],
        eval_names=EVAL_NAMES,
    log:
        "logs/aggregate_transfer.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/aggregate_transfer.py"


if PLANTED["enabled"]:

    rule measure_planted_control:
        input:
            model=MODEL_DIR,
            prompts=expand("results/prompts/{c}.parquet", c=PLANTED["contexts"]),
            baseline=expand("results/baseline/{c}.parquet", c=CONTEXTS),
            names=data_path(config["names_file"]),
            scenarios=SCENARIOS_FILE,
            text=data_path(EVAL["perplexity_text"]),
        output:
            table=report(
                "results/tables/planted_control.csv",
                caption="../report/planted_control.rst",
                category="Positive control",
            ),
            baseline=report(
                "results/tables/planted_baseline.csv",
                caption="../report/planted_control.rst",
                category="Positive control",
            ),
            plot=report(
                "results/plots/planted_control.png",
                caption="../report/planted_control.rst",
                category="Positive control",
            ),
            record="results/controls/planted_bias.json",
        params:
            planted=PLANTED,
            halves=NAME_SPLIT,
            use_surnames=config["use_surnames"],
            neuron_settings=NEURON_VARIANTS,
            head_settings=ONE_SHOT_HEAD_VARIANTS,
            draws=EVAL["random_draws"],
            batch_size=LOC["batch_size"],
            head_queries=LOC["head_queries"],
            winsorize=config["analysis"]["winsorize"],
            n_boot=config["analysis"]["n_boot"],
            n_perm=config["analysis"]["n_perm"],
            effect=config["analysis"]["effect"],
            seed=config["seed"],
            inlier_percentiles=EVAL["inlier_percentiles"],
            max_tokens=EVAL["perplexity_max_tokens"],
            **{k: v for k, v in EVAL_PARAMS.items() if k not in ("eval_names", "perplexity_max_tokens")},
        threads: RES["model_threads"]
        resources:
            **model_resources(),
        log:
            "logs/measure_planted_control.log",
        benchmark:
            "results/benchmarks/measure_planted_control.tsv"
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/measure_planted_control.py"
