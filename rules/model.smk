rule prepare_model:
    output:
        directory(MODEL_DIR),
    params:
        code=CODE_VERSIONS["prepare_model"],
        source=model_setting("source"),
        name=model_setting("name"),
        allow_download=model_setting("allow_download"),
    threads: RES["model_threads"]
    resources:
        mem_mb=model_resources("prepare")["mem_mb"],
        runtime=RES["model_runtime"],
    log:
        "logs/{model}/prepare_model.log",
    benchmark:
        "results/benchmarks/{model}/prepare_model.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/prepare_model.py"
