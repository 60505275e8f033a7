rule make_prompts:
    input:
        **names_input(),
    output:
        "results/prompts/{context}.parquet",
    params:
        code=CODE_VERSIONS["make_prompts"],
        context=prompt_spec,
        samples_per_name=config["samples_per_name"],
        seed=config["seed"],
        use_surnames=config["use_surnames"],
        names=NAME_RECORDS,
    log:
        "logs/make_prompts/{context}.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/make_prompts.py"
