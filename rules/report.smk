# The headline table (prunebias.report.headline): the report's first category.


rule summarize_headline:
    input:
        unpack(headline_inputs),
    output:
        table=report(
            "results/tables/{model}/headline.csv",
            caption="../report/headline.rst",
            category="1. Headline",
        ),
        html=report(
            "results/tables/{model}/headline.html",
            caption="../report/headline.rst",
            category="1. Headline",
        ),
        results="results/{model}/results.json",
    params:
        code=CODE_VERSIONS["summarize_headline"],
        effect=config["analysis"]["effect"],
        config=model_config,
    log:
        "logs/{model}/summarize_headline.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/summarize_headline.py"


if compare_outputs():

    rule compare_models:
        input:
            headline=expand("results/tables/{model}/headline.csv", model=MODELS),
            baseline=expand("results/tables/{model}/baseline_bias.csv", model=MODELS),
        output:
            table=report(
                "results/tables/models.csv",
                caption="../report/models.rst",
                category="1. Headline",
            ),
            plot=report(
                "results/plots/models.png",
                caption="../report/models.rst",
                category="1. Headline",
            ),
            svg="results/plots/models.svg",
        params:
            code=CODE_VERSIONS["compare_models"],
            models=list(MODELS),
            sources={name: m.get("source") or f"plant:{m['plant']['from']} ({m['plant']['scope']})"
                     for name, m in MODELS.items()},
            effect=config["analysis"]["effect"],
        log:
            "logs/compare_models.log",
        localrule: True
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/compare_models.py"
