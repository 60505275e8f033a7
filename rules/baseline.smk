rule generate_baseline:
    input:
        prompts="results/prompts/{context}.parquet",
        model=MODEL_DIR,
    output:
        "results/baseline/{context}.parquet",
    params:
        code=CODE_VERSIONS["generate_baseline"],
        context=prompt_spec,
        sampling=config["sampling"],
        dtype=config["model"]["dtype"],
        device=config["model"]["device"],
    group:
        "per_context"
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/generate_baseline/{context}.log",
    benchmark:
        "results/benchmarks/generate_baseline/{context}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/generate_baseline.py"


rule summarize_baseline:
    input:
        answers=expand("results/baseline/{context}.parquet", context=CONTEXTS),
    output:
        by_context=report(
            "results/tables/baseline_bias.csv",
            caption="../report/baseline_table.rst",
            category="Baseline bias",
        ),
        by_gender=report(
            "results/tables/baseline_bias_by_gender.csv",
            caption="../report/baseline_table.rst",
            category="Baseline bias",
        ),
        forest=report(
            "results/plots/baseline_forest.png",
            caption="../report/forest.rst",
            category="Baseline bias",
        ),
        forest_svg="results/plots/baseline_forest.svg",
    params:
        code=CODE_VERSIONS["summarize_baseline"],
        winsorize=config["analysis"]["winsorize"],
        n_boot=config["analysis"]["n_boot"],
        n_perm=config["analysis"]["n_perm"],
        effect=config["analysis"]["effect"],
        seed=config["seed"],
    log:
        "logs/summarize_baseline.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/summarize_baseline.py"
