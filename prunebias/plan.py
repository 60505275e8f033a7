"""The plan's vocabulary: mask settings, mask sources, methods, pools and transfer levels.

Every name that becomes a path part is built and parsed here and nowhere else:

- ``NeuronSetting`` -> ``black_b15_w15_global`` (direction, p_black %, p_white %, selection);
- ``HeadSetting``   -> ``sum_k10``, ``diff_k10``, ``greedy_k10``, ``setdiff_k40_5``;
- ``GradNeuronSetting`` -> ``grad_black_b15_w15_global``: gradient attribution of the grid
  bias objective, as many weights per matrix as that Wanda setting's mask (equal budget);
  ``gradmlp_black_b15_w15_global``: whole MLP neurons by the same attribution, as many as
  fit in that mask's MLP weight count;
- ``GradHeadSetting`` -> ``grad_k10`` / ``patch_k10``: the 10 heads whose removal moves the
  objective toward 0 the most (gate attribution / attribution patching);
- ``Source``        -> ``hiring-lawyer`` (one context), ``pooled@POOL`` (scored on the
  pool's prompts together), ``common@POOL`` (combined from the members' own masks);
- ``Method``        -> ``neurons`` / ``heads`` (the real mask) or ``random_neurons`` /
  ``random_heads`` (its matched random controls).

``parse(x.name) == x`` for every value the config schema allows (a hypothesis test).
``Plan`` resolves a validated config into these objects once (``rules/common.smk``), and
jobs receive the objects as params, so no script decodes a path. Pools and the paper's
generalization levels are pure functions of context names and their scenarios.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from prunebias.errors import ConfigError

KINDS = ("neurons", "heads")

# The transfer levels, near to far, with the paper's numbers (1-3).
LEVELS = {"same_context": 1, "pool_member": 1, "same_scenario": 2, "pool_heldout": 2, "mixed_pool_heldout": 2,
          "other_scenario": 3, "other_scenario_pool": 3}


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


Setting = NeuronSetting | HeadSetting | GradNeuronSetting | GradHeadSetting


def parse_setting(kind: str, name: str) -> Setting:
    """The setting of a ``neurons`` or ``heads`` mask from its name."""
    if kind == "neurons":
        return GradNeuronSetting.parse(name) if name.startswith("grad") else NeuronSetting.parse(name)
    if kind == "heads":
        return GradHeadSetting.parse(name) if name.startswith(("grad_", "patch_")) else HeadSetting.parse(name)
    raise ValueError(f"not a mask kind: {kind!r} (neurons or heads)")


@dataclass(frozen=True)
class Source:
    """Where a mask is learned: one context, or a pool scored together (``pooled``) or
    combined from its members' masks (``common``)."""

    form: Literal["context", "pooled", "common"]
    of: str  # the context name, or the pool name

    def __post_init__(self) -> None:
        if self.form not in ("context", "pooled", "common") or not self.of or "@" in self.of or "/" in self.of:
            raise ValueError(f"not a mask source: {self!r}")

    @property
    def name(self) -> str:
        return self.of if self.form == "context" else f"{self.form}@{self.of}"

    @property
    def combine(self) -> str:
        """How the mask's metadata names its origin: single, pooled or common."""
        return "single" if self.form == "context" else self.form

    @classmethod
    def parse(cls, name: str) -> Source:
        if "@" in name:
            form, of = name.split("@", 1)
            if form not in ("pooled", "common"):
                raise ValueError(f"not a mask source: {name!r} (CONTEXT, pooled@POOL or common@POOL)")
            return cls(form, of)  # type: ignore[arg-type]
        return cls("context", name)


@dataclass(frozen=True)
class Method:
    """What an evaluation applies: the real mask of a kind, or its matched random controls."""

    kind: Literal["neurons", "heads"]
    control: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"not a mask kind: {self.kind!r}")

    @property
    def name(self) -> str:
        return f"random_{self.kind}" if self.control else self.kind

    @classmethod
    def parse(cls, name: str) -> Method:
        control = name.startswith("random_")
        return cls(name.removeprefix("random_"), control)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Pool:
    """A named set of contexts; ``origin`` is configured, leave_one_out or other_scenarios."""

    name: str
    members: tuple[str, ...]
    origin: str = "configured"
    heldout: str | None = None
    target_scenario: str | None = None

    def info(self) -> dict[str, Any]:
        """The pool as written to params and tables (plain types)."""
        out: dict[str, Any] = {"members": list(self.members), "origin": self.origin}
        if self.heldout is not None:
            out["heldout"] = self.heldout
        if self.target_scenario is not None:
            out["target_scenario"] = self.target_scenario
        return out


def by_scenario(scenarios: Mapping[str, str]) -> dict[str, list[str]]:
    """Scenario -> its contexts, in the order given."""
    out: dict[str, list[str]] = {}
    for c, s in scenarios.items():
        out.setdefault(s, []).append(c)
    return out


def auto_pools(scenarios: Mapping[str, str], kinds: Sequence[str]) -> dict[str, Pool]:
    """The automatic pools of the paper's levels 2 and 3 (``scenarios``: context -> scenario).

    ``loo_{context}``: the other selected variations of its scenario (needs >= 2 of them);
    ``others_{scenario}``: every selected context of the other scenarios (needs >= 2).
    """
    groups = by_scenario(scenarios)
    pools: dict[str, Pool] = {}
    if "leave_one_out" in kinds:
        for members in groups.values():
            for c in members:
                rest = tuple(m for m in members if m != c)
                if len(rest) >= 2:
                    pools[f"loo_{c}"] = Pool(f"loo_{c}", rest, "leave_one_out", heldout=c)
    if "other_scenarios" in kinds:
        for scen in groups:
            rest = tuple(c for c in scenarios if scenarios[c] != scen)
            if len(rest) >= 2:
                pools[f"others_{scen}"] = Pool(f"others_{scen}", rest, "other_scenarios", target_scenario=scen)
    return pools


def configured_pools(entries: Mapping[str, Sequence[str]], sets: Mapping[str, Sequence[str]],
                     contexts: Sequence[str]) -> dict[str, Pool]:
    """``localization.pools`` resolved: each entry a context or a context set; members must be selected."""
    pools: dict[str, Pool] = {}
    for pool, items in entries.items():
        members: list[str] = []
        for e in items:
            members.extend(sets[e] if e in sets else [e])
        for m in members:
            if m not in contexts:
                raise ConfigError(f"config: localization.pools.{pool}", f"'{m}' is not a selected context",
                                  "add it to contexts (or context_sets), or remove it from the pool")
        if len(set(members)) < 2:
            raise ConfigError(f"config: localization.pools.{pool}", "a pool needs at least two contexts",
                              "list two or more contexts")
        pools[pool] = Pool(pool, tuple(dict.fromkeys(members)))
    return pools


def transfer_level(source: Source, target: str, scenarios: Mapping[str, str], pools: Mapping[str, Pool]) -> str:
    """The generalization level of evaluating a mask from ``source`` on context ``target``."""
    scen = scenarios[target]
    if source.form == "context":
        if source.of == target:
            return "same_context"
        return "same_scenario" if scenarios[source.of] == scen else "other_scenario"
    members = pools[source.of].members
    if target in members:
        return "pool_member"
    member_scenarios = {scenarios[m] for m in members}
    if member_scenarios == {scen}:
        return "pool_heldout"
    if scen not in member_scenarios:
        return "other_scenario_pool"
    return "mixed_pool_heldout"


def resolve_mask_items(items: Sequence[str], contexts: Sequence[str]) -> list[str]:
    """Config items that name a mask (``export``, ``side_effects.masks``) as KIND/SETTING/SOURCE;
    a KIND/SETTING item (no source) is that setting's mask of the last selected context, so
    a shipped default follows ``contexts`` instead of naming one."""
    return [item if item.count("/") == 2 else f"{item}/{contexts[-1]}" for item in items]


def unique(items: Sequence[Any]) -> list[Any]:
    """Items in order without repeats (15 and 15.0 are one setting, one folder)."""
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Plan:
    """Everything the DAG is made of, resolved once from a validated config.

    ``scenarios`` maps each selected context to its scenario; ``pools`` holds the
    configured and the automatic pools.
    """

    scenarios: Mapping[str, str]
    neuron_settings: tuple[NeuronSetting, ...]
    head_settings: tuple[HeadSetting, ...]
    configured: Mapping[str, Pool] = field(default_factory=dict)
    automatic: Mapping[str, Pool] = field(default_factory=dict)
    pool_masks: tuple[str, ...] = ("common", "pooled")
    random_controls: bool = True
    grad_neuron_settings: tuple[GradNeuronSetting, ...] = ()
    grad_head_settings: tuple[GradHeadSetting, ...] = ()
    grad_in_transfer: bool = True  # False: gradient attribution runs in the positive control only

    @classmethod
    def from_config(cls, config: Mapping[str, Any], scenarios: Mapping[str, str],
                    sets: Mapping[str, Sequence[str]]) -> Plan:
        loc = config["localization"]
        neurons = unique([NeuronSetting(d, pb, pw, loc["neurons"]["selection"])
                          for d in loc["neurons"]["directions"] for pb, pw in loc["neurons"]["p"]])
        heads = unique([HeadSetting(s, k) for s in loc["heads"]["scores"] for k in loc["heads"]["k"]]
                       + [HeadSetting("setdiff", kb, kw) for kb, kw in loc["heads"]["setdiff"]]
                       + [HeadSetting("greedy", k) for k in loc["heads"]["greedy"]])
        attr = loc.get("attribution") or {}
        grad_neurons = ([GradNeuronSetting(s) for s in neurons] if attr.get("neurons") else []) + (
            [GradNeuronSetting(s, whole=True) for s in neurons] if attr.get("mlp_neurons") else [])
        grad_heads = unique([GradHeadSetting(k) for k in attr.get("heads") or []]
                            + [GradHeadSetting(k, "patch") for k in attr.get("patch_heads") or []])
        return cls(dict(scenarios), tuple(neurons), tuple(heads),
                   configured_pools(loc["pools"], sets, list(scenarios)),
                   auto_pools(scenarios, loc["auto_pools"]), tuple(loc["pool_masks"]),
                   bool(config["evaluation"]["random_controls"]), tuple(grad_neurons), tuple(grad_heads),
                   bool(attr.get("transfer", False)))  # the schema default

    @property
    def contexts(self) -> list[str]:
        return list(self.scenarios)

    @property
    def pools(self) -> dict[str, Pool]:
        return {**self.configured, **self.automatic}

    def settings(self, kind: str) -> list[Setting]:
        """Every mask setting of a kind in the transfer DAG: the paper's (Wanda / attention),
        then gradient attribution's."""
        grad = self.grad_settings()
        if kind == "neurons":
            return [*self.neuron_settings, *(s for s in grad if isinstance(s, GradNeuronSetting))]
        return [*self.head_settings, *(s for s in grad if isinstance(s, GradHeadSetting))]

    def grad_settings(self) -> list[GradNeuronSetting | GradHeadSetting]:
        """The gradient-attribution settings of the transfer DAG (none with ``transfer: false``)."""
        return self.attribution_settings() if self.grad_in_transfer else []

    def attribution_settings(self) -> list[GradNeuronSetting | GradHeadSetting]:
        """Every configured gradient-attribution setting (the positive control uses them all)."""
        return [*self.grad_neuron_settings, *self.grad_head_settings]

    def one_shot_head_settings(self) -> list[HeadSetting]:
        return [s for s in self.head_settings if not s.greedy]

    def greedy_head_settings(self) -> list[HeadSetting]:
        return [s for s in self.head_settings if s.greedy]

    def setting(self, kind: str, name: str) -> Setting:
        """The configured setting with this name (a KeyError names the known ones)."""
        for s in self.settings(kind):
            if s.name == name:
                return s
        raise KeyError(f"no {kind} setting {name!r}; configured: {[s.name for s in self.settings(kind)]}")

    def scored_sources(self) -> list[Source]:
        """Sources whose masks are scored from prompts: every context, pooled@ configured pools."""
        pooled = [Source("pooled", p) for p in self.configured if "pooled" in self.pool_masks]
        return [Source("context", c) for c in self.scenarios] + pooled

    def common_sources(self) -> list[Source]:
        """common@ every configured pool (if asked for) and every automatic pool."""
        configured = [Source("common", p) for p in self.configured if "common" in self.pool_masks]
        return configured + [Source("common", p) for p in self.automatic]

    def sources(self) -> list[Source]:
        return self.scored_sources() + self.common_sources()

    def methods(self) -> list[Method]:
        real = [Method(k) for k in KINDS]
        return real + ([Method(k, True) for k in KINDS] if self.random_controls else [])

    def source_contexts(self, source: Source) -> list[str]:
        """The contexts whose prompts a mask from ``source`` is learned on."""
        return [source.of] if source.form == "context" else list(self.pools[source.of].members)

    def level(self, source: Source, target: str) -> str:
        return transfer_level(source, target, self.scenarios, self.pools)

    def pool_info(self) -> dict[str, dict[str, Any]]:
        return {name: pool.info() for name, pool in self.pools.items()}
