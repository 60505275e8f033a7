"""Rule plant_model: a model entry with ``plant:`` is its ``from`` model with a known bias
planted -> ``results/model/{model}/`` (a prepared model like any other), with the ground
truth beside the weights in ``planted_bias.json``.

The plant (``prunebias.planted.planting.plant_bias``) is calibrated on every name and on the
``from`` model's own baseline answers in every selected context: it is the ground truth,
not a method under test (the methods learn on the learning names of the planted model's
own answers, through the same rules as any model). Scope ``general``: the race of the
first name moves the amount in every context; ``context``: only in the plant's contexts
(the neurons need the name's race AND that context's cue). The record holds what was
edited (layer, neurons, rows and columns), the scope and its contexts, the intended
direction, and the scope check: the planted neurons' activation per context and race on
the calibration prompts, which shows that a context plant is silent elsewhere.
"""

import time
from pathlib import Path

import pandas as pd

from prunebias.audit.answers import PROMPT_COLUMNS
from prunebias.audit.contexts import load_yaml
from prunebias.files import read_parquet
from prunebias.workflow.logs import setup_logging
from prunebias.model.modeling import load_model, read_identity
from prunebias.audit.names import load_names
from prunebias.planted.planted_model import save_planted
from prunebias.planted.planting import anchor_prompts, plant_bias, scope_check, silence_ratio


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.plant_model")
    p = smk.params
    plant = p.plant
    t0 = time.perf_counter()
    # float32: the edit is written at full precision; each job loads it in its own dtype
    model, tok = load_model(smk.input.model, "float32", p.device, smk.threads)
    calibration = pd.concat([read_parquet(f, PROMPT_COLUMNS + ["response"]) for f in smk.input.baseline],
                            ignore_index=True)
    calibration = calibration[calibration["sample"] < plant["calibration_samples"]].reset_index(drop=True)
    names = pd.DataFrame(p.names) if p.names is not None else load_names(smk.input.names, use_surnames=p.use_surnames)
    value_prompts = anchor_prompts(load_yaml(Path(smk.input.scenarios)), names)
    context_scope = plant["scope"] == "context"
    planted = plant_bias(model, tok, calibration, plant["layer"], plant["n_neurons"], plant["strength"], plant["seed"],
                         value_prompts=value_prompts, sign=plant["sign"], sharpness=plant["sharpness"],
                         threshold=plant["threshold"], contexts=plant["contexts"] if context_scope else None,
                         cue_weight=plant["cue_weight"], max_answer_tokens=plant["answer_tokens"])
    scope = scope_check(planted)
    ratio = silence_ratio(scope)
    base = read_identity(smk.input.model)
    identity = {**base, "name": p.name, "source": f"plant:{base['name']}", "source_kind": "plant",
                "plant": dict(plant)}
    intended = {"direction": "Black names' answers larger" if plant["sign"] > 0 else "Black names' answers smaller",
                "effect_sign": -plant["sign"],  # the sign of White - Black where the plant acts
                "contexts": (list(plant["contexts"]) if context_scope else list(p.contexts))}
    save_planted(model, tok, planted, smk.output[0], source=base["source"], identity=identity,
                 extra={"from": base["name"], "intended": intended, "scope_check": scope.to_dict("records"),
                        "silence_ratio": ratio})
    log.info("planted (%s scope%s) into layer %d neurons %s in %.0f s; activation per context:\n%s\n"
             "silence ratio (largest gap outside / smallest inside): %s", planted.scope,
             f": {planted.contexts}" if context_scope else "", planted.layer, planted.neurons,
             time.perf_counter() - t0, scope.to_string(index=False), ratio)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
