"""The settings of the method families: each names one mask, and its name is a path part.

- ``NeuronSetting`` -> ``black_b15_w15_global`` (direction, p_black %, p_white %, selection);
- ``HeadSetting``   -> ``sum_k10``, ``diff_k10``, ``greedy_k10``, ``setdiff_k40_5``;
- ``GradNeuronSetting`` -> ``grad_black_b15_w15_global``: gradient attribution of the grid
  bias objective, as many weights per matrix as that Wanda setting's mask (equal budget);
  ``gradmlp_black_b15_w15_global``: whole MLP neurons by the same attribution, as many as
  fit in that mask's MLP weight count;
- ``GradHeadSetting`` -> ``grad_k10`` / ``patch_k10``: the 10 heads whose removal moves the
  objective toward 0 the most (gate attribution / attribution patching);
- ``DirectionSetting`` -> ``resid_d80_answer``: the Black - White mean difference of the
  residual stream after the decoder layer 80% deep, at the position that generates the
  answer (``answer``) or over the name's tokens (``name``), projected out of the model.

A setting class has ``name``, ``parse(name)`` (``parse(x.name) == x``, a hypothesis test),
``params()`` (its table columns) and ``scoring`` (the table's method label). Which family a
setting belongs to, how it is learned and controlled, is the registry's
(``prunebias.methods.registry``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


def format_percent(p: float) -> str:
    """The shortest positional decimal that reads back to exactly ``p`` (15.0 -> ``15``, 5e-05 -> ``0.00005``).

    Positional, never exponent notation, so the path pattern stays simple and
    ``float(format_percent(p)) == p`` for every float.
    """
    return np.format_float_positional(float(p), unique=True, trim="-")


def _whole(k: float) -> int:
    """A count as an int (JSON Schema integers include 10.0); anything else is an error."""
    if int(k) != k:
        raise ValueError(f"not a whole number: {k!r}")
    return int(k)


@dataclass(frozen=True)
class NeuronSetting:
    """A Wanda set-difference mask: the top ``p_black`` % of the Black scores minus the top
    ``p_white`` % of the White scores (``direction`` black; white the reverse), per matrix
    (``global``) or per output row (``row``)."""

    direction: Literal["black", "white"]
    p_black: float
    p_white: float
    selection: Literal["global", "row"] = "global"

    kind = "neurons"
    scoring = "wanda"
    PATTERN = re.compile(r"^(?P<direction>black|white)_b(?P<pb>[0-9]+(?:\.[0-9]+)?)_w(?P<pw>[0-9]+(?:\.[0-9]+)?)"
                         r"_(?P<sel>global|row)$")

    def __post_init__(self) -> None:
        if self.direction not in ("black", "white") or self.selection not in ("global", "row"):
            raise ValueError(f"not a neuron setting: {self!r}")
        for p in (self.p_black, self.p_white):
            if not 0 < p < 100:
                raise ValueError(f"neuron setting percentages must be in (0, 100): {self!r}")
        object.__setattr__(self, "p_black", float(self.p_black))
        object.__setattr__(self, "p_white", float(self.p_white))

    @property
    def name(self) -> str:
        return f"{self.direction}_b{format_percent(self.p_black)}_w{format_percent(self.p_white)}_{self.selection}"

    @classmethod
    def parse(cls, name: str) -> NeuronSetting:
        m = cls.PATTERN.match(name)
        if not m:
            raise ValueError(f"not a neuron mask setting: {name!r} (e.g. black_b15_w15_global)")
        return cls(m["direction"], float(m["pb"]), float(m["pw"]), m["sel"])  # type: ignore[arg-type]

    def params(self) -> dict[str, Any]:
        """The columns of this setting in tables and in a mask's metadata."""
        return {"direction": self.direction, "p_black": self.p_black, "p_white": self.p_white,
                "selection": self.selection}

    @property
    def band(self) -> NeuronSetting:
        """The Wanda setting whose control band (``controls.next_band``) its random controls come from: its own."""
        return self


@dataclass(frozen=True)
class HeadSetting:
    """A head mask: the top ``k`` heads by ``score`` (sum / diff of the races' attention to
    the name, or greedy picks), or ``setdiff``: top ``k`` by Black minus top ``k_white`` by White."""

    score: Literal["sum", "diff", "greedy", "setdiff"]
    k: int
    k_white: int | None = None

    kind = "heads"
    scoring = "attention"
    PATTERN = re.compile(r"^(?P<score>sum|diff|greedy)_k(?P<k>[1-9][0-9]*)$|^setdiff_k(?P<kb>[1-9][0-9]*)_(?P<kw>[1-9][0-9]*)$")

    def __post_init__(self) -> None:
        if self.score not in ("sum", "diff", "greedy", "setdiff") or self.k < 1:
            raise ValueError(f"not a head setting: {self!r}")
        if (self.score == "setdiff") != (self.k_white is not None) or (self.k_white is not None and self.k_white < 1):
            raise ValueError(f"k_white is needed by setdiff and only by it: {self!r}")
        object.__setattr__(self, "k", _whole(self.k))  # the schema's integers may arrive as 10.0
        if self.k_white is not None:
            object.__setattr__(self, "k_white", _whole(self.k_white))

    @property
    def name(self) -> str:
        if self.score == "setdiff":
            return f"setdiff_k{self.k}_{self.k_white}"
        return f"{self.score}_k{self.k}"

    @property
    def greedy(self) -> bool:
        """Greedy masks re-run the model after each pick (``score_heads_greedy``)."""
        return self.score == "greedy"

    @classmethod
    def parse(cls, name: str) -> HeadSetting:
        m = cls.PATTERN.match(name)
        if not m:
            raise ValueError(f"not a head mask setting: {name!r} (e.g. sum_k10, setdiff_k40_5)")
        if m["kb"] is not None:
            return cls("setdiff", int(m["kb"]), int(m["kw"]))
        return cls(m["score"], int(m["k"]))  # type: ignore[arg-type]

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "k": self.k}
        if self.k_white is not None:
            out["k_white"] = self.k_white
        return out


@dataclass(frozen=True)
class GradNeuronSetting:
    """Gradient attribution of the grid bias objective, at ``budget``'s Wanda mask's size.

    ``whole`` False (``grad_``): single weights ranked by -W * dB/dW, as many per matrix as
    the budget's mask. ``whole`` True (``gradmlp_``): whole MLP neurons (gate and up rows,
    down column) ranked by the sum of S over them, as many as fit in the budget's MLP
    weight count."""

    budget: NeuronSetting
    whole: bool = False

    kind = "neurons"
    PREFIXES = {False: "grad_", True: "gradmlp_"}

    @property
    def scoring(self) -> str:
        return "grad_mlp" if self.whole else "grad"

    @property
    def name(self) -> str:
        return self.PREFIXES[self.whole] + self.budget.name

    @classmethod
    def parse(cls, name: str) -> GradNeuronSetting:
        for whole, prefix in cls.PREFIXES.items():
            if name.startswith(prefix) and (whole or not name.startswith(cls.PREFIXES[True])):
                return cls(NeuronSetting.parse(name.removeprefix(prefix)), whole)
        raise ValueError(f"not a gradient neuron setting: {name!r} (e.g. grad_black_b15_w15_global,"
                         " gradmlp_black_b15_w15_global)")

    def params(self) -> dict[str, Any]:
        return {**self.budget.params(), "unit": "neuron" if self.whole else "weight"}

    @property
    def band(self) -> NeuronSetting:
        """Controls come from the control band of the budget's Wanda setting (same count per matrix)."""
        return self.budget


@dataclass(frozen=True)
class GradHeadSetting:
    """The k heads whose removal moves the grid bias objective toward 0 the most: by gate
    attribution (``grad_k10``, the sum of S over the entries the head ablation zeroes) or
    by attribution patching between White and Black prompts (``patch_k10``)."""

    k: int
    score: str = "gate"

    kind = "heads"
    PATTERN = re.compile(r"^(?P<prefix>grad|patch)_k(?P<k>[1-9][0-9]*)$")
    PREFIXES = {"gate": "grad", "patch": "patch"}

    def __post_init__(self) -> None:
        if self.k < 1 or self.score not in self.PREFIXES:
            raise ValueError(f"not a head setting: {self!r}")
        object.__setattr__(self, "k", _whole(self.k))

    @property
    def scoring(self) -> str:
        return "grad" if self.score == "gate" else "patching"

    @property
    def name(self) -> str:
        return f"{self.PREFIXES[self.score]}_k{self.k}"

    @classmethod
    def parse(cls, name: str) -> GradHeadSetting:
        m = cls.PATTERN.match(name)
        if not m:
            raise ValueError(f"not a gradient head setting: {name!r} (e.g. grad_k10, patch_k10)")
        return cls(int(m["k"]), "gate" if m["prefix"] == "grad" else "patch")

    def params(self) -> dict[str, Any]:
        return {"score": self.scoring, "k": self.k}


@dataclass(frozen=True)
class DirectionSetting:
    """A race direction (Karvonen & Marks 2025): the Black - White mean difference of the
    residual stream after the decoder layer ``depth`` % deep (layer ``floor(depth / 100 *
    n_layers)``, the last at 100), at ``position``: ``answer``, the token whose next-token
    prediction is the first answer token, or ``name``, the mean over the name's tokens.
    A depth, not a layer index, so that one config serves models of any depth."""

    depth: int
    position: Literal["answer", "name"] = "answer"

    kind = "directions"
    scoring = "direction"
    PATTERN = re.compile(r"^resid_d(?P<depth>[1-9][0-9]*)_(?P<pos>answer|name)$")

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", _whole(self.depth))
        if not 0 < self.depth <= 100 or self.position not in ("answer", "name"):
            raise ValueError(f"not a direction setting: {self!r} (depth in 1..100, position answer or name)")

    @property
    def name(self) -> str:
        return f"resid_d{self.depth}_{self.position}"

    @classmethod
    def parse(cls, name: str) -> DirectionSetting:
        m = cls.PATTERN.match(name)
        if not m:
            raise ValueError(f"not a direction setting: {name!r} (e.g. resid_d80_answer, resid_d50_name)")
        return cls(int(m["depth"]), m["pos"])  # type: ignore[arg-type]

    def layer(self, n_layers: int) -> int:
        """The decoder layer whose output the direction is read from."""
        return min(n_layers - 1, self.depth * n_layers // 100)

    def params(self) -> dict[str, Any]:
        return {"depth": self.depth, "position": self.position}


Setting = NeuronSetting | HeadSetting | GradNeuronSetting | GradHeadSetting | DirectionSetting
