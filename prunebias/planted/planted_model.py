"""A planted model on disk: its weights and ``planted_bias.json`` written atomically, and
read back (the record, and the planted layer's edited matrices without loading the model).
The plant itself is ``prunebias.planted.planting``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from safetensors import safe_open

from prunebias.files import atomic_path
from prunebias.model.modeling import IDENTITY_FILE
from prunebias.planted.plant_spec import PLANTED_FILE, read_planted_record
from prunebias.planted.planting import PlantedBias


def save_planted(model: Any, tok: Any, planted: PlantedBias, out_dir: str | Path, source: str = "",
                 extra: Mapping[str, Any] | None = None, identity: Mapping[str, Any] | None = None) -> None:
    """Save a planted model (weights, config, tokenizer) with ``planted_bias.json`` (the
    record and ``extra``, e.g. the scope check) beside it, atomically. ``identity``: the
    ``prunebias_model.json`` of the planted model (a prepared model like any other)."""
    record = {**planted.to_json(), "source": source, **(extra or {})}
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / PLANTED_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=float) + "\n")
        if identity is not None:
            (tmp / IDENTITY_FILE).write_text(json.dumps(dict(identity), indent=2, sort_keys=True) + "\n")


def read_planted(model_dir: str | Path) -> PlantedBias:
    """The record written by ``save_planted`` (without the direction vectors): what
    ``score_planted_recall`` scores masks against."""
    d = read_planted_record(model_dir)
    return PlantedBias(layer=d["layer"], neurons=d["neurons"], seed=d["seed"], strength=d["strength"],
                       sharpness=d["sharpness"], sign=d["sign"], threshold=d.get("threshold", 0.0),
                       scope=d.get("scope", "general"), contexts=d.get("contexts", []), stats=d["stats"])


def planted_weights_of(model_dir: str | Path, planted: PlantedBias) -> dict[str, np.ndarray]:
    """The planted layer's edited matrices (mask keys -> float arrays), read from the
    safetensors files without loading the model (an 8B model's one layer, not all of it)."""
    # mask keys name layers.L.MODULE; the planted modules are the MLP's (model.layers.L.mlp.MODULE)
    want = {f"model.layers.{key.split('.')[1]}.mlp.{key.split('.')[2]}.weight": key for key in planted.edited}
    out: dict[str, np.ndarray] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in want.keys() & set(st.keys()):
                out[want[name]] = st.get_tensor(name).float().numpy()
    missing = sorted(set(want.values()) - set(out))
    if missing:
        raise ValueError(f"{model_dir}: the planted matrices {missing} are not in its safetensors files")
    return out
