rule generate_baseline:
    input:
        prompts="results/prompts/{context}.parquet",
        model=MODEL_DIR,
    output:
        "results/baseline/{model}/{context}.parquet",
    params:
        code=CODE_VERSIONS["generate_baseline"],
        context=prompt_spec,
        sampling=config["sampling"],
        dtype=model_setting("dtype"),
        device=model_setting("device"),
    group:
        "per_context"
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/{model}/generate_baseline/{context}.log",
    benchmark:
        "results/benchmarks/{model}/generate_baseline/{context}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/generate_baseline.py"


rule summarize_baseline:
    input:
        answers=expand("results/baseline/{{model}}/{context}.parquet", context=CONTEXTS),
    output:
        by_context=report(
            "results/tables/{model}/baseline_bias.csv",
            caption="../report/baseline_table.rst",
            category="Baseline bias",
        ),
        by_gender=report(
            "results/tables/{model}/baseline_bias_by_gender.csv",
            caption="../report/baseline_table.rst",
            category="Baseline bias",
        ),
        forest=report(
            "results/plots/{model}/baseline_forest.png",
            caption="../report/forest.rst",
            category="Baseline bias",
        ),
        forest_svg="results/plots/{model}/baseline_forest.svg",
    params:
        code=CODE_VERSIONS["summarize_baseline"],
        winsorize=config["analysis"]["winsorize"],
        n_boot=config["analysis"]["n_boot"],
        n_perm=config["analysis"]["n_perm"],
        max_new_tokens=config["sampling"]["max_new_tokens"],
        effect=config["analysis"]["effect"],
        seed=config["seed"],
    log:
        "logs/{model}/summarize_baseline.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/summarize_baseline.py"
