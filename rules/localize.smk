# One learning rule per input kind (prunebias.methods.registry.LEARNERS): it learns every setting of
# every registered family that learns from that input, dispatching the family's learn.
ACTIVATION_LEARNED = PLAN.learned_from("activations")
ATTENTION_LEARNED = PLAN.learned_from("attention")
MODEL_RUN_LEARNED = PLAN.learned_from("model_runs")
GRADIENT_LEARNED = PLAN.learned_from("gradients")
RESIDUAL_LEARNED = PLAN.learned_from("residuals")


rule cache_activations:
    input:
        answers="results/baseline/{model}/{context}.parquet",
        model=MODEL_DIR,
    output:
        activations="results/activations/{model}/{context}.parquet",
        heads="results/head_attention/{model}/{context}.parquet",
        # the residual stream per name, for race directions (only when some are learned)
        **({"residuals": "results/residuals/{model}/{context}.parquet"} if RESIDUAL_LEARNED else {}),
    params:
        code=CODE_VERSIONS["cache_activations"],
        batch_size=LOC["batch_size"],
        max_samples_per_name=LOC["max_samples_per_name"],
        head_queries=LOC["head_queries"],
        dtype=model_setting("dtype"),
        device=model_setting("device"),
    group:
        "per_context"
    threads: RES["model_threads"]
    resources:
        **model_resources(),
    log:
        "logs/{model}/cache_activations/{context}.log",
    benchmark:
        "results/benchmarks/{model}/cache_activations/{context}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/cache_activations.py"


if ACTIVATION_LEARNED:

    rule score_neurons:
        input:
            activations=lambda wc: expand("results/activations/{model}/{c}.parquet", model=wc.model, c=source_contexts(wc.source)),
            model=MODEL_DIR,
        output:
            [mask_path(kind=f.kind, setting=s.name) for f, s in ACTIVATION_LEARNED],
        params:
            code=CODE_VERSIONS["score_neurons"],
            learner_code=learner_code(ACTIVATION_LEARNED),
            learned=[(f.name, s) for f, s in ACTIVATION_LEARNED],
            source=source_of,
            contexts=lambda wc: source_contexts(wc.source),
            folds=FOLDS,
            device=model_setting("device"),
        wildcard_constraints:
            source=one_of(s.name for s in PLAN.scored_sources()),
        threads: RES["model_threads"]
        resources:
            **model_resources(masks=len(ACTIVATION_LEARNED)),
        log:
            "logs/{model}/score_neurons/{source}.log",
        benchmark:
            "results/benchmarks/{model}/score_neurons/{source}.tsv"
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/score_neurons.py"


if ATTENTION_LEARNED:

    rule score_heads:
        input:
            attention=lambda wc: expand("results/head_attention/{model}/{c}.parquet", model=wc.model, c=source_contexts(wc.source)),
            model=MODEL_DIR,
        output:
            [mask_path(kind=f.kind, setting=s.name) for f, s in ATTENTION_LEARNED],
        params:
            code=CODE_VERSIONS["score_heads"],
            learner_code=learner_code(ATTENTION_LEARNED),
            learned=[(f.name, s) for f, s in ATTENTION_LEARNED],
            source=source_of,
            contexts=lambda wc: source_contexts(wc.source),
            folds=FOLDS,
        wildcard_constraints:
            source=one_of(s.name for s in PLAN.scored_sources()),
        log:
            "logs/{model}/score_heads/{source}.log",
        localrule: True
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/score_heads.py"


if MODEL_RUN_LEARNED:

    rule score_heads_greedy:
        input:
            answers=lambda wc: expand("results/baseline/{model}/{c}.parquet", model=wc.model, c=source_contexts(wc.source)),
            model=MODEL_DIR,
        output:
            [mask_path(kind=f.kind, setting=s.name) for f, s in MODEL_RUN_LEARNED],
        params:
            code=CODE_VERSIONS["score_heads_greedy"],
            settings=tuple(s for _, s in MODEL_RUN_LEARNED),
            source=source_of,
            contexts=lambda wc: source_contexts(wc.source),
            batch_size=LOC["batch_size"],
            max_samples_per_name=LOC["max_samples_per_name"],
            folds=FOLDS,
            head_queries=LOC["head_queries"],
            ablation=EVAL["head_ablation"],
            dtype=model_setting("dtype"),
            device=model_setting("device"),
        wildcard_constraints:
            source=one_of(s.name for s in PLAN.scored_sources()),
        threads: RES["model_threads"]
        resources:
            **model_resources(),
        log:
            "logs/{model}/score_heads_greedy/{source}.log",
        benchmark:
            "results/benchmarks/{model}/score_heads_greedy/{source}.tsv"
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/score_heads_greedy.py"


if RESIDUAL_LEARNED:

    rule score_directions:
        input:
            residuals=lambda wc: expand("results/residuals/{model}/{c}.parquet", model=wc.model, c=source_contexts(wc.source)),
            model=MODEL_DIR,
        output:
            [mask_path(kind=f.kind, setting=s.name) for f, s in RESIDUAL_LEARNED],
        params:
            code=CODE_VERSIONS["score_directions"],
            learner_code=learner_code(RESIDUAL_LEARNED),
            learned=[(f.name, s) for f, s in RESIDUAL_LEARNED],
            source=source_of,
            contexts=lambda wc: source_contexts(wc.source),
            folds=FOLDS,
        wildcard_constraints:
            source=one_of(s.name for s in PLAN.scored_sources()),
        log:
            "logs/{model}/score_directions/{source}.log",
        localrule: True
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/score_directions.py"


if GRADIENT_LEARNED:

    rule score_attribution:
        input:
            answers=lambda wc: expand("results/baseline/{model}/{c}.parquet", model=wc.model, c=source_contexts(wc.source)),
            # the masks whose size a gradient neuron mask takes (its Wanda setting's)
            budgets=lambda wc: [
                mask_path(wc.model, "neurons", f.budget(s).name, wc.source) for f, s in GRADIENT_LEARNED if f.budget
            ],
            model=MODEL_DIR,
            text=data_path(EVAL["perplexity_text"]),
        output:
            masks=[mask_path(kind=f.kind, setting=s.name) for f, s in GRADIENT_LEARNED],
            summary="results/attribution/{model}/{source}.json",
        params:
            code=CODE_VERSIONS["score_attribution"],
            learner_code=learner_code(GRADIENT_LEARNED),
            learned=[(f.name, s) for f, s in GRADIENT_LEARNED],
            source=source_of,
            contexts=lambda wc: source_contexts(wc.source),
            specs=lambda wc: {c: CONTEXTS[c].spec() for c in source_contexts(wc.source)},
            attribution=LOC["attribution"],
            ablation=EVAL["head_ablation"],
            n_boot=config["analysis"]["n_boot"],
            seed=config["seed"],
            max_tokens=EVAL["perplexity_max_tokens"],
            folds=FOLDS,
            dtype=model_setting("dtype"),
            device=model_setting("device"),
        wildcard_constraints:
            source=one_of(s.name for s in PLAN.scored_sources()),
        threads: RES["model_threads"]
        resources:
            **model_resources("attribution"),
        log:
            "logs/{model}/score_attribution/{source}.log",
        benchmark:
            "results/benchmarks/{model}/score_attribution/{source}.tsv"
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/score_attribution.py"


if attribution_summaries():

    rule summarize_attribution:
        input:
            summaries=attribution_summaries(),
        output:
            objective=report(
                "results/tables/{model}/attribution_objective.csv",
                caption="../report/attribution.rst",
                category="Attribution",
            ),
            faithfulness=report(
                "results/tables/{model}/attribution_faithfulness.csv",
                caption="../report/attribution.rst",
                category="Attribution",
            ),
            units="results/tables/{model}/attribution_faithfulness_units.csv",
            plot=report(
                "results/plots/{model}/attribution_faithfulness.png",
                caption="../report/attribution.rst",
                category="Attribution",
            ),
            plot_svg="results/plots/{model}/attribution_faithfulness.svg",
        params:
            code=CODE_VERSIONS["summarize_attribution"],
        log:
            "logs/{model}/summarize_attribution.log",
        localrule: True
        conda:
            "../envs/prunebias.yaml"
        script:
            "../workflow_scripts/summarize_attribution.py"


rule combine_masks:
    input:
        masks=lambda wc: [mask_path(wc.model, wc.kind, wc.setting, c) for c in PLAN.pools[wc.pool].members],
    output:
        mask_path(source="common@{pool}"),
    params:
        code=CODE_VERSIONS["combine_masks"],
        source=lambda wc: Source("common", wc.pool),
    wildcard_constraints:
        kind=ANY_KIND,
        pool=one_of(PLAN.pools),
    log:
        "logs/{model}/combine_masks/{kind}/{setting}/{pool}.log",
    threads: 1
    resources:
        # the packed bits of one mask, twice, read from the first member once it exists
        mem_mb=lambda wc, input, attempt: combine_mem_mb(input.masks[0], attempt),
        **resources.light_resources(RES),
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/combine_masks.py"


rule draw_controls:
    input:
        mask=mask_path(),
        # the activation cache, for a family whose control is drawn from a score band (Wanda's)
        activations=lambda wc: (
            expand("results/activations/{model}/{c}.parquet", model=wc.model, c=source_contexts(wc.source))
            if PLAN.family(wc.kind, wc.setting).control.needs_activations
            else []
        ),
        model=MODEL_DIR,
    output:
        [control_path(draw=d) for d in DRAWS],
    params:
        code=CODE_VERSIONS["draw_controls"],
        control_code=control_code,
        kind=lambda wc: wc.kind,
        family=lambda wc: PLAN.family(wc.kind, wc.setting).name,
        setting=lambda wc: PLAN.setting(wc.kind, wc.setting),
        source=source_of,
        seed=config["seed"],
        folds=FOLDS,
        device=model_setting("device"),
    wildcard_constraints:
        kind=ANY_KIND,
        source=one_of(s.name for s in PLAN.sources()),
    threads: RES["model_threads"]
    resources:
        **model_resources(masks=1 + len(DRAWS)),
    log:
        "logs/{model}/draw_controls/{kind}/{setting}/{source}.log",
    benchmark:
        "results/benchmarks/{model}/draw_controls/{kind}/{setting}/{source}.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/draw_controls.py"


rule measure_mask_stability:
    input:
        activations=expand("results/activations/{{model}}/{c}.parquet", c=CONTEXTS),
        attention=expand("results/head_attention/{{model}}/{c}.parquet", c=CONTEXTS),
        model=MODEL_DIR,
        # cross-fitting has learned each context's masks on both halves: compared, not relearned
        masks=stability_masks(),
    output:
        report(
            "results/tables/{model}/mask_stability.csv",
            caption="../report/stability_table.rst",
            category="Localization",
        ),
    params:
        code=CODE_VERSIONS["measure_mask_stability"],
        learner_code=learner_code(CACHE_LEARNED),
        contexts=list(CONTEXTS),  # the order of both input lists
        halves=NAME_SPLIT,
        mask_keys=[key for key, _ in stability_mask_index()],
        activation_learned=[(f.name, s) for f, s in PLAN.learned_from("activations")],
        attention_learned=[(f.name, s) for f, s in PLAN.learned_from("attention")],
        device=model_setting("device"),
    threads: RES["model_threads"]
    resources:
        **model_resources(masks=2 * len(ACTIVATION_LEARNED)),
    log:
        "logs/{model}/measure_mask_stability.log",
    benchmark:
        "results/benchmarks/{model}/measure_mask_stability.tsv"
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/measure_mask_stability.py"


PRUNED_KINDS = [kind for kind in ("neurons", "heads") if PLAN.settings(kind)]  # a figure per kind learned
# the masks that remove weights or heads (a direction removes neither: it is in the transfer table)
PRUNING_MASKS = [(ids, path) for ids, path in mask_index() if ids[0] in PRUNED_KINDS]


rule plot_pruned:
    input:
        masks=[path for _, path in PRUNING_MASKS],
        model=MODEL_DIR,  # its identity: a mask of another model is refused
    output:
        table=report(
            "results/tables/{model}/pruned_by_layer.csv",
            caption="../report/pruned.rst",
            category="What was pruned",
        ),
        plots=[
            report(f"results/plots/{{model}}/pruned_{kind}.png", caption="../report/pruned.rst", category="What was pruned")
            for kind in PRUNED_KINDS
        ],
        vector=[f"results/plots/{{model}}/pruned_{kind}.svg" for kind in PRUNED_KINDS],
    params:
        code=CODE_VERSIONS["plot_pruned"],
        masks=[ids for ids, _ in PRUNING_MASKS],
        kinds=PRUNED_KINDS,
    log:
        "logs/{model}/plot_pruned.log",
    localrule: True
    conda:
        "../envs/prunebias.yaml"
    script:
        "../workflow_scripts/plot_pruned.py"
