"""The positive control of the default run, as a test: a bias planted into SmolLM2-135M
(the general plant of config/config.yaml's models) must be found by the gradient
attribution at least as well as by Wanda at the same budget: whole MLP neurons by their
summed S = -W * dB/dW, within the Wanda mask's MLP weight count, against the Wanda mask.
The default ``gradmlp_`` mask adds the SNIP set difference, which spares this plant (below).

Learning names only, one prompt per name: calibration answers of the unplanted model,
the plant, the planted model's answers, the activation cache and Wanda's set difference,
then S. Recall: the share of the planted gate/up rows and down columns selected
(``PlantedBias.recall``); the perplexity of the pruned model must stay near the unpruned.

Also checked, the price of the alternative: single weights by the most negative S (the
same count per matrix as Wanda) include large weights every answer needs, and removing
them all at once breaks the model (the first-order estimate says nothing about that).
"""

import numpy as np
import pytest

from conftest import REPO, default_config

pytestmark = pytest.mark.slow


def test_attribution_finds_the_planted_bias_at_least_as_well_as_wanda(tmp_path):
    import torch

    from prunebias.model.activations import add_sumsq, cache_batches
    from prunebias.audit.answers import generate_answers
    from prunebias.methods.attribution import source_attribution, text_importance
    from prunebias.methods.attribution_select import mlp_count, mlp_neuron_masks, protect_scores, weight_masks
    from prunebias.methods.masks import Mask
    from prunebias.audit.contexts import load_yaml, resolve_context
    from prunebias.model.modeling import load_model, materialize, resolve_source
    from prunebias.audit.names import load_names, split_names
    from prunebias.methods.neurons import neuron_masks
    from prunebias.methods.objective import answer_grid
    from prunebias.model.perplexity import perplexity
    from prunebias.methods.settings import GradNeuronSetting, NeuronSetting
    from prunebias.planted.planting import anchor_prompts, plant_bias
    from prunebias.audit.prompts import build_prompts
    from prunebias.model.pruning import pruned
    from prunebias.model.sampling import Sampling

    cfg = default_config()
    plant = next(m["plant"] for m in cfg["models"] if m.get("plant", {}).get("scope") == "general")
    context = "hiring-lawyer"
    materialize(resolve_source(cfg["models"][0]["source"]), tmp_path / "m", "smollm2", False)
    model, tok = load_model(tmp_path / "m", "float32", "cpu", torch.get_num_threads(), attn_implementation="eager")
    scenarios = load_yaml(REPO / cfg["scenarios_file"])
    ctx = resolve_context(context, scenarios)
    names = load_names(REPO / cfg["names_file"])
    learn = set(split_names(names, cfg["seed"])["learn"])
    prompts = build_prompts(ctx, names, 1, cfg["seed"])
    prompts = prompts[prompts["name"].isin(learn)].reset_index(drop=True)
    sampling = Sampling(**cfg["sampling"])
    calibration = generate_answers(model, tok, prompts, sampling, "baseline", ctx.spec())
    planted = plant_bias(model, tok, calibration, plant["layer"], plant["n_neurons"], plant["strength"],
                         plant["seed"], value_prompts=anchor_prompts(scenarios, names), sign=plant["sign"])
    rows = generate_answers(model, tok, prompts, sampling, "baseline", ctx.spec())
    rows["row"] = np.arange(len(rows))
    sums = {"white": {}, "black": {}}
    for act, _, _ in cache_batches(model, tok, rows, 32, with_attention=False):
        add_sumsq(sums, act.to_pandas())
    wanda = neuron_masks(model, sums, [NeuronSetting("black", 15, 15, "global")])[0]
    att = cfg["localization"]["attribution"]
    grid = answer_grid(*ctx.spec()["range"], att["grid_size"])
    scores, info = source_attribution(model, tok, {context: (rows, grid)}, batch_size=8, log_value=True)
    assert info[context]["B"] < 0  # the plant makes Black names' answers larger (sign 1)
    text = (REPO / cfg["evaluation"]["perplexity_text"]).read_text()
    spared = protect_scores(scores, text_importance(model, tok, text), att["protect_text_percent"])
    counts = {k: int(a.sum()) for k, a in wanda.items()}
    setting = GradNeuronSetting(NeuronSetting("black", 15, 15, "global"), whole=True)
    budgets = {setting.budget.name: counts}
    mlp, = mlp_neuron_masks(spared, budgets, [setting])  # the default: whole neurons
    mlp_plain, = mlp_neuron_masks(scores, budgets, [setting])  # without the SNIP protection
    single, = weight_masks(scores, budgets, [GradNeuronSetting(setting.budget)])
    assert sum(int(a.sum()) for a in mlp.values()) <= mlp_count(counts)
    assert {k: int(a.sum()) for k, a in single.items()} == counts

    def ppl(arrays):
        with pruned(model, Mask({"kind": "neurons"}, arrays)):
            return perplexity(model, tok, text)

    unpruned = perplexity(model, tok, text)
    table = {name: (planted.recall(a)["all"], ppl(a)) for name, a in
             [("wanda", wanda), ("grad_mlp, set difference", mlp), ("grad_mlp, plain", mlp_plain),
              ("grad single weights, plain", single)]}
    print(f"unpruned perplexity {unpruned:.1f}; recall, perplexity: {table}")
    assert table["grad_mlp, plain"][0] >= table["wanda"][0] > 0, table
    assert table["grad_mlp, set difference"][1] < 1.2 * unpruned, table
    # The planted up rows are the answer gate (a whitened direction with a large norm), so
    # |W * dL/dW| on the neutral text puts the planted neurons in their layer's top half and
    # the SNIP set difference spares them: the default grad_mlp mask misses this plant, and
    # the plain one holds it at a perplexity near twice the unpruned (docs/localization.md,
    # "Gradient attribution"). Measured, not hoped for:
    assert planted.stats["up_row"] == "answer_gate"
    assert table["grad_mlp, set difference"][0] < table["grad_mlp, plain"][0], table
    # the price of single weights by plain S: the most negative S include large weights every answer needs
    assert table["grad single weights, plain"][1] > 3 * unpruned
