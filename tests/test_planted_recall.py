"""The positive control of the default run, as a test: a bias planted into SmolLM2-135M
(``controls.planted_bias`` of config/config.yaml) must be found by the gradient
attribution at least as well as by Wanda at the same budget (the same count per matrix).

Learning names only, one prompt per name: calibration answers of the unplanted model,
the plant, the planted model's answers, the activation cache and Wanda's set difference,
then S = -W * dB/dW and the same counts per matrix. Recall: the share of the planted
gate/up rows and down columns selected (``PlantedBias.recall``).

The price, also checked: the weights with the most negative S include large weights every
answer needs, and removing them all at once breaks the model (the first-order estimate
says nothing about that); the default's SNIP set difference (``protect_text_percent``)
keeps the perplexity near the unpruned model's and gives up recall for it (README).
"""

import numpy as np
import pytest

from conftest import REPO, default_config

pytestmark = pytest.mark.slow


def test_attribution_finds_the_planted_bias_at_least_as_well_as_wanda(tmp_path):
    import torch

    from prunebias.activations import add_sumsq, cache_batches
    from prunebias.answers import generate_answers
    from prunebias.attribution import protect, select_by_counts, source_attribution, text_importance
    from prunebias.masks import Mask
    from prunebias.contexts import load_yaml, resolve_context
    from prunebias.modeling import load_model, materialize, resolve_source
    from prunebias.names import load_names, split_names
    from prunebias.neurons import neuron_masks
    from prunebias.objective import answer_grid
    from prunebias.perplexity import perplexity
    from prunebias.plan import NeuronSetting
    from prunebias.planting import anchor_prompts, plant_bias
    from prunebias.prompts import build_prompts
    from prunebias.pruning import pruned
    from prunebias.sampling import Sampling

    cfg = default_config()
    plant = cfg["controls"]["planted_bias"]
    context = plant["contexts"][0]
    materialize(resolve_source(cfg["model"]["source"]), tmp_path / "m", "smollm2", False)
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
    for act, _ in cache_batches(model, tok, rows, 32, with_attention=False):
        add_sumsq(sums, act.to_pandas())
    wanda = neuron_masks(model, sums, [NeuronSetting("black", 15, 15, "global")])[0]
    att = cfg["localization"]["attribution"]
    grid = answer_grid(*ctx.spec()["range"], att["grid_size"])
    toward, _, info = source_attribution(model, tok, {context: (rows, grid)}, batch_size=8, log_value=True)
    assert info[context]["B"] < 0  # the plant makes Black names' answers larger (sign 1)
    counts = {k: int(a.sum()) for k, a in wanda.items()}
    grad = select_by_counts(toward, counts)
    assert {k: int(a.sum()) for k, a in grad.items()} == counts
    got, want = planted.recall(grad, model), planted.recall(wanda, model)
    assert got["all"] >= want["all"] > 0, (got, want)
    text = (REPO / cfg["evaluation"]["perplexity_text"]).read_text()
    spared = select_by_counts(protect(toward, text_importance(model, tok, text), att["protect_text_percent"]), counts)

    def ppl(arrays):
        with pruned(model, Mask({"kind": "neurons"}, arrays)):
            return perplexity(model, tok, text)

    unpruned = perplexity(model, tok, text)
    costs = {"unprotected": ppl(grad), "protected": ppl(spared), "wanda": ppl(wanda)}
    print(f"recall: attribution {got['all']:.3f}, with the set difference {planted.recall(spared)['all']:.3f},"
          f" Wanda {want['all']:.3f}; perplexity unpruned {unpruned:.1f}, {costs}")
    assert costs["unprotected"] > 3 * unpruned and costs["protected"] < 2 * unpruned
