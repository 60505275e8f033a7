"""The plan's vocabulary: mask sources, methods, pools and transfer levels, and the ``Plan``.

Every name that becomes a path part is built and parsed here or in ``prunebias.methods.settings``
(a mask's setting: ``black_b15_w15_global``, ``sum_k10``, ...) and nowhere else:

- ``Source``        -> ``hiring-lawyer`` (one context), ``pooled@POOL`` (scored on the
  pool's prompts together), ``common@POOL`` (combined from the members' own masks);
- ``Method``        -> ``neurons`` / ``heads`` / ``directions`` (the real mask) or
  ``random_neurons`` / ``random_heads`` / ``random_directions`` (its matched random controls).

``parse(x.name) == x`` for every value the config schema allows (a hypothesis test).
``Plan`` resolves a validated config into these objects once (``prunebias.workflow.preflight``):
each registered method family (``prunebias.methods.registry``) plans its settings, and jobs receive
the objects as params, so no script decodes a path. Pools and the paper's generalization
levels are pure functions of context names and their scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from prunebias.errors import ConfigError
from prunebias.methods.registry import KINDS, Family, families
from prunebias.methods.settings import Setting

# The transfer levels, near to far, with the paper's numbers (1-3).
LEVELS = {"same_context": 1, "pool_member": 1, "same_scenario": 2, "pool_heldout": 2, "mixed_pool_heldout": 2,
          "other_scenario": 3, "other_scenario_pool": 3}


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

    kind: Literal["neurons", "heads", "directions"]
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


@dataclass(frozen=True)
class Plan:
    """Everything the DAG is made of, resolved once from a validated config.

    ``scenarios`` maps each selected context to its scenario; ``planned`` each registered
    method family (``prunebias.methods.registry``) to its configured settings; ``pools`` holds the
    configured and the automatic pools.
    """

    scenarios: Mapping[str, str]
    planned: Mapping[str, tuple[Setting, ...]]
    configured: Mapping[str, Pool] = field(default_factory=dict)
    automatic: Mapping[str, Pool] = field(default_factory=dict)
    pool_masks: tuple[str, ...] = ("common", "pooled")
    random_controls: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any], scenarios: Mapping[str, str],
                    sets: Mapping[str, Sequence[str]]) -> Plan:
        loc = config["localization"]
        return cls(dict(scenarios), {f.name: tuple(f.planned(config)) for f in families()},
                   configured_pools(loc["pools"], sets, list(scenarios)),
                   auto_pools(scenarios, loc["auto_pools"]), tuple(loc["pool_masks"]),
                   bool(config["evaluation"]["random_controls"]))

    @property
    def contexts(self) -> list[str]:
        return list(self.scenarios)

    @property
    def pools(self) -> dict[str, Pool]:
        return {**self.configured, **self.automatic}

    def settings(self, kind: str) -> list[Setting]:
        """Every mask setting of a kind in the transfer DAG, family by family in registry
        order (the paper's Wanda / attention first, then gradient attribution's)."""
        return [s for f in families(kind) for s in self.planned.get(f.name, ())]

    def family(self, kind: str, name: str) -> Family:
        """The family of the configured ``kind`` setting ``name`` (a KeyError names the known ones)."""
        for f in families(kind):
            if any(s.name == name for s in self.planned.get(f.name, ())):
                return f
        raise KeyError(f"no {kind} setting {name!r}; configured: {[s.name for s in self.settings(kind)]}")

    def setting(self, kind: str, name: str) -> Setting:
        """The configured setting with this name (a KeyError names the known ones)."""
        return next(s for s in self.planned[self.family(kind, name).name] if s.name == name)

    def learned_from(self, source: str) -> list[tuple[Family, Setting]]:
        """(family, setting) of every setting learned from one input kind (``methods.LEARNERS``),
        the outputs of that input's learning rule."""
        return [(f, s) for f in families() if f.learns_from == source for s in self.planned.get(f.name, ())]

    def doses(self, kind: str) -> set[float]:
        """The doses (p_black of Wanda masks, k of head masks) among a kind's settings."""
        return {f.dose(s) for f in families(kind) if f.dose is not None for s in self.planned.get(f.name, ())}

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
