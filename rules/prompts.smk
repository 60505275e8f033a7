rule make_prompts:
    input:
        names=data_path(config["names_file"]),
    output:
        "results/prompts/{context}.parquet",
    params:
        code=CODE_VERSIONS["make_prompts"],
        context=prompt_spec,
        samples_per_name=config["samples_per_name"],
        seed=config["seed"],
        use_surnames=config["use_surnames"],
    log:
        "logs/make_prompts/{context}.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/make_prompts.py"
