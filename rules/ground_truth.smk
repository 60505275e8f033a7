# Ground truth: a planted model's masks scored against what was planted (plant_model's
# record beside the weights). A pooled source is in scope when the plant is general.
rule score_planted_recall:
    input:
        model=MODEL_DIR,
        masks=lambda wc: [path.format(model=wc.model) for key, path in recall_mask_index()],
    output:
        table=report(
            "results/tables/{model}/planted_recall.csv",
            caption="../report/planted_recall.rst",
            category="Ground truth",
        ),
    params:
        code=CODE_VERSIONS["score_planted_recall"],
        masks=[key for key, _ in recall_mask_index()],
    wildcard_constraints:
        model=one_of(PLANTED),
    log:
        "logs/{model}/score_planted_recall.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/score_planted_recall.py"
