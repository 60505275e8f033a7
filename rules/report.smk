# The headline table (prunebias.headline): the report's first category.


rule summarize_headline:
    input:
        unpack(headline_inputs),
    output:
        table=report(
            "results/tables/headline.csv",
            caption="../report/headline.rst",
            category="1. Headline",
        ),
        html=report(
            "results/tables/headline.html",
            caption="../report/headline.rst",
            category="1. Headline",
        ),
    params:
        code=CODE_VERSIONS["summarize_headline"],
        effect=config["analysis"]["effect"],
    log:
        "logs/summarize_headline.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/summarize_headline.py"
