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
        unknown = [c for c in listed if c not in contexts]
        if unknown or not contexts:
            raise ConfigError(f"{where}.contexts", f"{unknown or 'nothing'} is not a list of selected contexts",
                              f"list the contexts the plant acts in, from {contexts}, or leave contexts empty "
                              "(the last selected context)")
        if listed and set(listed) >= set(contexts):
            raise ConfigError(f"{where}.contexts", "covers every selected context: nothing is left to show that "
                              "the plant stays in its contexts (and nothing to calibrate its context cue against)",
                              "select another context, or use scope: general")
        listed = plant_contexts(out, contexts)
    if not out.get("threshold", 0.0) < 1.0:
        raise ConfigError(f"{where}.threshold", f"{out['threshold']} is not below 1",
                          "the gate must open for a Black name (race signal 1): use a threshold below 1")
    return {"calibration_samples": CALIBRATION_SAMPLES, **out, "scope": scope, "contexts": listed}


def plant_contexts(plant: Mapping[str, Any], contexts: list[str]) -> list[str]:
    """The contexts a context plant acts in: those listed, else the last selected context
    (so the shipped plant follows `contexts`); [] for a general plant."""
    if plant.get("scope", "general") != "context":
        return []
    return list(plant.get("contexts") or contexts[-1:])


def covers_every_context(plant: Mapping[str, Any], contexts: list[str]) -> bool:
    """A resolved context plant with no selected context outside its own: it cannot be
    calibrated (its cue needs an outside context) nor shown to stay in its contexts."""
    return plant["scope"] == "context" and set(plant["contexts"]) >= set(contexts)
