"""A planted model's ``plant`` entry (config ``models``), checked before any job runs, and
the record plant_model writes beside its weights.

Import-light (no torch): the Snakefile resolves every plant while it builds the DAG.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prunebias.errors import ConfigError

PLANTED_FILE = "planted_bias.json"


def read_planted_record(model_dir: str | Path) -> dict[str, Any]:
    """``planted_bias.json`` of a planted model directory, as plant_model wrote it."""
    return json.loads((Path(model_dir) / PLANTED_FILE).read_text())


CALIBRATION_SAMPLES = 2  # baseline answers per name the plant is calibrated on (the old control's choice)


def resolve_plant(plant: Mapping[str, Any], loaded: Mapping[str, bool], contexts: list[str], where: str
                  ) -> dict[str, Any]:
    """A model entry's ``plant`` checked against the other models (``loaded``: name -> has
    a source) and the selected ``contexts`` (the schema filled in the defaults), with the
    calibration's sample count added. Raises ConfigError naming ``where`` and the fix."""
    out = {**plant}
    src = out["from"]
    if src not in loaded or not loaded[src]:
        have = sorted(n for n, ok in loaded.items() if ok)
        raise ConfigError(f"{where}.from", f"'{src}' is not a model of models with a source",
                          f"name one of {have} (a plant goes into a loaded model, not into another plant)")
    scope = out.get("scope", "general")
    listed = list(out.get("contexts") or [])
    if scope == "general" and listed:
        raise ConfigError(f"{where}.contexts", "a general plant acts in every context",
                          "leave contexts empty, or set scope: context")
    if scope == "context":
        listed = listed or contexts[-1:]  # none listed: the last selected context (it follows `contexts`)
        unknown = [c for c in listed if c not in contexts]
        if not listed or unknown:
            raise ConfigError(f"{where}.contexts", f"{unknown or 'nothing'} is not a list of selected contexts",
                              f"list the contexts the plant acts in, from {contexts}, or leave contexts empty "
                              "(the last selected context)")
    if not out.get("threshold", 0.0) < 1.0:
        raise ConfigError(f"{where}.threshold", f"{out['threshold']} is not below 1",
                          "the gate must open for a Black name (race signal 1): use a threshold below 1")
    return {"calibration_samples": CALIBRATION_SAMPLES, **out, "scope": scope, "contexts": listed}


def containment_warning(plant: Mapping[str, Any], contexts: list[str], where: str) -> str:
    """A context plant that acts in every selected context runs (detection and removal are
    measured) but cannot show that it stays in its contexts: a warning, "" otherwise."""
    if plant["scope"] != "context" or not set(plant["contexts"]) >= set(contexts):
        return ""
    return (f"{where}.contexts: the context plant acts in every selected context ({', '.join(contexts)}), so "
            "nothing shows that it stays in its contexts; select another context to measure its containment")
