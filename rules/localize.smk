rule cache_activations:
    input:
        answers="results/baseline/{context}.parquet",
        model=MODEL_DIR,
    output:
        activations="results/activations/{context}.parquet",
        heads="results/head_attention/{context}.parquet",
    params:
        batch_size=LOC["batch_size"],
        max_samples_per_name=LOC["max_samples_per_name"],
        head_queries=LOC["head_queries"],
        dtype=config["model"]["dtype"],
        device=config["model"]["device"],
    group:
        "per_context"
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/cache_activations/{context}.log",
    benchmark:
        "results/benchmarks/cache_activations/{context}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/cache_activations.py"


rule score_neurons:
    input:
        activations=lambda wc: expand("results/activations/{c}.parquet", c=source_contexts(wc.source)),
        model=MODEL_DIR,
    output:
        expand("results/masks/neurons/{variant}/{{source}}.npz", variant=NEURON_VARIANTS),
    params:
        contexts=lambda wc: source_contexts(wc.source),
        combine=lambda wc: "pooled" if "@" in wc.source else "single",
        learn_names=LEARN_NAMES,
        device=config["model"]["device"],
    wildcard_constraints:
        source="|".join(re.escape(s) for s in SCORED_SOURCES),
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/score_neurons/{source}.log",
    benchmark:
        "results/benchmarks/score_neurons/{source}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/score_neurons.py"


if ONE_SHOT_HEAD_VARIANTS:

    rule score_heads:
        input:
            attention=lambda wc: expand("results/head_attention/{c}.parquet", c=source_contexts(wc.source)),
            model=MODEL_DIR,
        output:
            expand("results/masks/heads/{variant}/{{source}}.npz", variant=ONE_SHOT_HEAD_VARIANTS),
        params:
            contexts=lambda wc: source_contexts(wc.source),
            combine=lambda wc: "pooled" if "@" in wc.source else "single",
            learn_names=LEARN_NAMES,
        wildcard_constraints:
            source="|".join(re.escape(s) for s in SCORED_SOURCES),
        log:
            "logs/score_heads/{source}.log",
        localrule: True
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/score_heads.py"


if GREEDY_HEAD_VARIANTS:

    rule score_heads_greedy:
        input:
            answers=lambda wc: expand("results/baseline/{c}.parquet", c=source_contexts(wc.source)),
            model=MODEL_DIR,
        output:
            expand("results/masks/heads/{variant}/{{source}}.npz", variant=GREEDY_HEAD_VARIANTS),
        params:
            contexts=lambda wc: source_contexts(wc.source),
            combine=lambda wc: "pooled" if "@" in wc.source else "single",
            batch_size=LOC["batch_size"],
            max_samples_per_name=LOC["max_samples_per_name"],
            learn_names=LEARN_NAMES,
            head_queries=LOC["head_queries"],
            ablation=EVAL["head_ablation"],
            dtype=config["model"]["dtype"],
            device=config["model"]["device"],
        wildcard_constraints:
            source="|".join(re.escape(s) for s in SCORED_SOURCES),
        threads: RES["model_threads"]
        resources:
            **model_resources(),
        log:
            "logs/score_heads_greedy/{source}.log",
        benchmark:
            "results/benchmarks/score_heads_greedy/{source}.tsv"
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/score_heads_greedy.py"


rule combine_masks:
    input:
        masks=lambda wc: expand(
            "results/masks/{kind}/{variant}/{c}.npz",
            kind=wc.kind,
            variant=wc.variant,
            c=POOLS[wc.pool],
        ),
    output:
        "results/masks/{kind}/{variant}/common@{pool}.npz",
    wildcard_constraints:
        kind="neurons|heads",
        pool="|".join(re.escape(p) for p in POOLS) or "^$",
    log:
        "logs/combine_masks/{kind}/{variant}/{pool}.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/combine_masks.py"


rule draw_controls:
    input:
        mask="results/masks/{kind}/{variant}/{source}.npz",
        activations=lambda wc: (
            expand("results/activations/{c}.parquet", c=source_contexts(wc.source))
            if wc.kind == "neurons"
            else []
        ),
        model=MODEL_DIR,
    output:
        [f"results/masks/random_{{kind}}/{{variant}}/{{source}}/draw{d}.npz" for d in DRAWS],
    params:
        seed=config["seed"],
        learn_names=LEARN_NAMES,
        device=config["model"]["device"],
    wildcard_constraints:
        kind="neurons|heads",
        source="|".join(re.escape(s) for s in ALL_SOURCES),
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/draw_controls/{kind}/{variant}/{source}.log",
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/draw_controls.py"


rule measure_mask_stability:
    input:
        activations=expand("results/activations/{c}.parquet", c=CONTEXTS),
        attention=expand("results/head_attention/{c}.parquet", c=CONTEXTS),
        model=MODEL_DIR,
    output:
        report(
            "results/tables/mask_stability.csv",
            caption="../report/stability_table.rst",
            category="Localization",
        ),
    params:
        halves=NAME_SPLIT,
        neuron_settings=NEURON_VARIANTS,
        head_settings=ONE_SHOT_HEAD_VARIANTS,
        device=config["model"]["device"],
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/measure_mask_stability.log",
    benchmark:
        "results/benchmarks/measure_mask_stability.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/measure_mask_stability.py"
