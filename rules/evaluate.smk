rule perplexity_base:
    input:
        model=MODEL_DIR,
        text=data_path(EVAL["perplexity_text"]),
    output:
        "results/eval/base_perplexity.json",
    params:
        dtype=config["model"]["dtype"],
        device=config["model"]["device"],
        max_tokens=EVAL["perplexity_max_tokens"],
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/perplexity_base.log",
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/perplexity_base.py"


rule evaluate_pruned:
    input:
        mask=lambda wc: f"results/masks/{mask_kind(wc.method)}/{wc.variant}/{wc.source}.npz",
        model=MODEL_DIR,
        prompts=expand("results/prompts/{context}.parquet", context=CONTEXTS),
        text=data_path(EVAL["perplexity_text"]),
    output:
        answers=expand("results/eval/{{method}}/{{variant}}/{{source}}/{target}.parquet", target=CONTEXTS),
        info="results/eval/{method}/{variant}/{source}/info.json",
    params:
        contexts=lambda wc: {c: CONTEXTS[c].spec() for c in CONTEXTS},
        samples_per_name=EVAL["samples_per_name"],
        ablation=EVAL["head_ablation"],
        sampling=config["sampling"],
        seed=config["seed"],
        dtype=config["model"]["dtype"],
        device=config["model"]["device"],
        perplexity_max_tokens=EVAL["perplexity_max_tokens"],
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
        baseline=expand("results/baseline/{context}.parquet", context=CONTEXTS),
        base_perplexity="results/eval/base_perplexity.json",
    output:
        table=report(
            "results/tables/transfer.csv",
            caption="../report/transfer_table.rst",
            category="Transfer",
        ),
        heatmaps=report(
            [
                f"results/plots/transfer_{method}__{variant}.png"
                for method in METHODS
                for variant in KIND_VARIANTS[mask_kind(method)]
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
        seed=config["seed"],
        inlier_percentiles=EVAL["inlier_percentiles"],
    log:
        "logs/aggregate_transfer.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/aggregate_transfer.py"
