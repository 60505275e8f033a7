rule prepare_model:
    output:
        directory(MODEL_DIR),
    params:
        code=CODE_VERSIONS["prepare_model"],
        source=model_setting("source"),
        name=model_setting("name"),
        allow_download=model_setting("allow_download"),
    wildcard_constraints:
        model=one_of(LOADED),
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


# A planted model (ground truth) is its from model with a known bias planted, calibrated on
# that model's own baseline answers in every selected context; every later rule treats it
# like any prepared model.
rule plant_model:
    input:
        **names_input(),
        model=lambda wc: MODEL_DIR.format(model=PLANTED[wc.model]["from"]),
        baseline=lambda wc: expand("results/baseline/{m}/{c}.parquet", m=PLANTED[wc.model]["from"], c=CONTEXTS),
        scenarios=SCENARIOS_FILE,
    output:
        directory(MODEL_DIR),
    params:
        code=CODE_VERSIONS["plant_model"],
        name=model_setting("name"),
        plant=lambda wc: PLANTED[wc.model],
        contexts=list(CONTEXTS),
        names=NAME_RECORDS,
        use_surnames=config["use_surnames"],
        device=model_setting("device"),
    wildcard_constraints:
        model=one_of(PLANTED),
    threads: RES["model_threads"]
    resources:
        mem_mb=model_resources("prepare")["mem_mb"],
        runtime=RES["model_runtime"],
    log:
        "logs/{model}/plant_model.log",
    benchmark:
        "results/benchmarks/{model}/plant_model.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/plant_model.py"


# What the figures depend on beyond the config (weights, resolved dtype, versions, CPU);
# the headline carries it with the workflow's commit and the date it was written.
rule record_provenance:
    input:
        model=MODEL_DIR,
    output:
        "results/tables/{model}/provenance.json",
    params:
        code=CODE_VERSIONS["record_provenance"],
        name=model_setting("name"),
        dtype=model_setting("dtype"),
        device=model_setting("device"),
    threads: 1
    resources:
        **resources.light_resources(RES),
    log:
        "logs/{model}/record_provenance.log",
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/record_provenance.py"
