rule prepare_model:
    output:
        directory(MODEL_DIR),
    params:
        code=CODE_VERSIONS["prepare_model"],
        source=config["model"]["source"],
        name=config["model"]["name"],
        allow_download=config["model"]["allow_download"],
    threads: RES["model_threads"]
    resources:
        mem_mb=resources.model_mem(RES, "prepare", None, SOURCE_SIZE),
        runtime=RES["model_runtime"],
    log:
        "logs/prepare_model.log",
    benchmark:
        "results/benchmarks/prepare_model.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/prepare_model.py"
