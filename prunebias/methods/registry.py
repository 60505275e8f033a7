"""The method registry: one entry per method family, everything the plan, the rules and the
scripts need to know of it.

A family is how masks of one kind are learned: its typed settings (``prunebias.methods.settings``:
each a mask's name and path part), the config key that plans them, the input it learns
from, ``learn`` (for the inputs whose rule is shared by several families), its matched
random control and how its masks are applied to a model (its ``kind``: ``neurons`` zero
weights, ``heads`` zero heads, ``directions`` project a direction out of the residual
stream; ``prunebias.model.pruning``). The plan (``Plan.settings``,
``parse_setting``), the learning rules (``rules/localize.smk``), ``draw_controls`` and the
tables go through this registry; no script tells families apart by their attributes.

Adding a method is one ``register(Family(...))`` and one key in config/schema.yaml, plus a
rule only when it learns from a new kind of input (``LEARNERS``). tests/test_methods.py
adds a toy family to a copy of the workflow that way and runs it through the DAG.

Learners (``learns_from``), one rule each:

- ``activations`` (rule ``score_neurons``): ``learn(model, sums, settings)``, ``sums`` the
  summed squared activations per race group (``activations.group_sumsq``: {"white",
  "black"} -> {(layer, site): tensor}), ``model`` in float32; one array dict per setting;
- ``attention`` (rule ``score_heads``): ``learn(white, black, settings)``, the races' mean
  attention to the name (layers x heads); one ``{"heads", "scores"}`` dict per setting;
- ``gradients`` (rule ``score_attribution``): ``learn(scores, budgets, settings)``, the
  source's attribution scores (``attribution.SourceScores``: per weight, per MLP neuron,
  per head) from one backward pass that serves every family; ``budgets`` the per-matrix
  counts of the Wanda masks named by a setting's ``budget``. A family's ``needs`` names the
  extra scores its learn reads (``patching``: attribution patching of the heads);
- ``model_runs`` (rule ``score_heads_greedy``): greedy picks re-run the model after each
  pick, so that rule holds the loop and its family has no ``learn`` here;
- ``residuals`` (rule ``score_directions``): ``learn(means, settings)``, ``means`` each
  learning name's mean residual stream per position (``activations.name_residuals``); one
  ``{"direction"}`` dict per setting.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from prunebias.methods.settings import (DirectionSetting, GradHeadSetting, GradNeuronSetting, HeadSetting, NeuronSetting,
                                Setting)

Kind = Literal["neurons", "heads", "directions"]
KINDS: tuple[str, ...] = ("neurons", "heads", "directions")  # in the order of plans and tables
Arrays = dict[str, Any]  # name -> numpy array (a mask's arrays)
# A function given as "module:function" is imported when first called: the registry is
# read when the DAG is built and by ``import prunebias`` in a notebook, which stay free
# of torch; the learners and controls load it in their jobs.
Ref = Callable[..., Any] | str


def resolve(ref: Ref) -> Callable[..., Any]:
    """The function a ``Ref`` names (a callable is itself)."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


# input kind -> the rule that learns every family of that input
LEARNERS = {"activations": "score_neurons", "attention": "score_heads", "model_runs": "score_heads_greedy",
            "gradients": "score_attribution", "residuals": "score_directions"}


@dataclass
class ControlInputs:
    """What a control draw may need beyond the real mask, loaded on first use: the model
    (float32) and the fold's summed activations (``sums``), for controls drawn from a band."""

    load_model: Callable[[], Any]
    load_sums: Callable[[], dict[str, dict[tuple[int, str], Any]]]  # race -> (layer, site) -> tensor


@dataclass(frozen=True)
class Control:
    """A family's matched random counterpart: ``draw(real, seeds, setting, inputs)`` returns one
    array dict per seed with the real mask's count where it matters (per matrix, layer or row)."""

    name: str
    draw: Ref
    needs_activations: bool = False  # the rule then gives the source's activation cache

    def __call__(self, real: Arrays, seeds: list[int], setting: Any, inputs: ControlInputs | None) -> list[Arrays]:
        return resolve(self.draw)(real, seeds, setting, inputs)


# Wanda settings: the next score band down (controls.next_band, chosen by measurement)
BAND = Control("band", "prunebias.methods.controls:band_controls", needs_activations=True)
# whole MLP neurons: as many whole neurons per layer, from the layer's other neurons
UNITS = Control("units", "prunebias.methods.controls:whole_neuron_controls")
# heads: as many heads per layer, from the layer's other heads
HEADS = Control("heads", "prunebias.methods.controls:head_controls")
# weights of a family without a score band: the count per matrix, uniformly from the other weights
UNIFORM = Control("uniform", "prunebias.methods.controls:uniform_controls")
# race directions: a random direction of the same norm (uniform on the sphere)
SPHERE = Control("sphere", "prunebias.methods.controls:direction_controls")


@dataclass(frozen=True)
class Family:
    """One method family (see the module docstring). ``parse`` raises ValueError for a name
    that is not the family's; ``planned(config)`` gives its settings from a validated config;
    ``dose`` is the number a dose-response plot puts on its x axis (None: not drawn);
    ``needs`` the extra inputs its learner computes; ``budget`` the setting of the mask
    (same source) whose per-matrix counts its masks take (an input of its learning job)."""

    name: str
    kind: Kind
    config_key: str
    parse: Callable[[str], Setting]
    planned: Callable[[Mapping[str, Any]], list[Setting]]
    learns_from: str
    control: Control
    learn: Ref | None = None
    dose: Callable[[Any], float] | None = None
    needs: frozenset[str] = frozenset()
    budget: Callable[[Any], Setting] | None = None  # the mask whose size it takes (gradient neurons: Wanda's)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"family {self.name}: kind {self.kind!r} is none of {KINDS}")
        if self.learns_from not in LEARNERS:
            raise ValueError(f"family {self.name}: learns_from {self.learns_from!r} is none of {sorted(LEARNERS)} "
                             "(a new input kind needs its rule in rules/localize.smk and an entry in LEARNERS)")
        if self.learns_from != "model_runs" and self.learn is None:
            raise ValueError(f"family {self.name}: the {self.learns_from} rule calls learn; give one")


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family to the registry (its name must be new)."""
    if family.name in FAMILIES:
        raise ValueError(f"a method family {family.name!r} is registered already")
    FAMILIES[family.name] = family
    return family


def families(kind: str | None = None) -> list[Family]:
    """The registered families (of one kind), in registry order: the order of tables and plans."""
    return [f for f in FAMILIES.values() if kind is None or f.kind == kind]


def parsed(kind: str, name: str) -> tuple[Family, Setting]:
    """(family, setting) of a mask of ``kind`` (``KINDS``) from its name: exactly one family
    of the kind must accept it (two would make a path mean two masks)."""
    if kind not in KINDS:
        raise ValueError(f"not a mask kind: {kind!r} (one of {KINDS})")
    found = []
    for f in families(kind):
        try:
            found.append((f, f.parse(name)))
        except ValueError:
            continue
    if len(found) > 1:
        raise ValueError(f"{kind} setting {name!r} is claimed by several families: {[f.name for f, _ in found]}")
    if not found:
        examples = {"neurons": "black_b15_w15_global, gradmlp_black_b15_w15_global",
                    "heads": "sum_k10, setdiff_k40_5, patch_k10", "directions": "resid_d80_answer"}
        raise ValueError(f"not a {kind} mask setting: {name!r} (families: {[f.name for f in families(kind)]}; "
                         f"e.g. {examples.get(kind, '')})")
    return found[0]


def parse_setting(kind: str, name: str) -> Setting:
    """The setting of a ``kind`` mask from its name (``parsed``)."""
    return parsed(kind, name)[1]


def learn_all(learned: Sequence[tuple[str, Setting]], *inputs: Any) -> list[Arrays]:
    """One array dict per (family name, setting) of ``learned``, in that order: each family's
    ``learn`` is called once with all its settings (they share the inputs' work)."""
    out: dict[tuple[str, Setting], Arrays] = {}
    for name in dict.fromkeys(f for f, _ in learned):
        settings = [s for f, s in learned if f == name]
        out.update(zip(((name, s) for s in settings), resolve(FAMILIES[name].learn)(*inputs, settings),
                       strict=True))
    return [out[item] for item in learned]


def unique(items: Sequence[Any]) -> list[Any]:
    """Items in order without repeats (15 and 15.0 are one setting, one folder)."""
    return list(dict.fromkeys(items))


def _only(parse: Callable[[str], Any], keep: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    """``parse`` restricted to the settings ``keep`` accepts (families sharing a setting class)."""
    def parsed(name: str) -> Any:
        s = parse(name)
        if not keep(s):
            raise ValueError(f"not a {what} setting: {name!r}")
        return s
    return parsed


# --- the registered families --------------------------------------------------------------

def _wanda(config: Mapping[str, Any]) -> list[Setting]:
    n = config["localization"]["neurons"]
    return unique([NeuronSetting(d, pb, pw, n["selection"]) for d in n["directions"] for pb, pw in n["p"]])


def _attention(config: Mapping[str, Any]) -> list[Setting]:
    h = config["localization"]["heads"]
    return unique([HeadSetting(s, k) for s in h["scores"] for k in h["k"]]
                  + [HeadSetting("setdiff", kb, kw) for kb, kw in h["setdiff"]])


def _greedy(config: Mapping[str, Any]) -> list[Setting]:
    return unique([HeadSetting("greedy", k) for k in config["localization"]["heads"]["greedy"]])


def _attribution(key: str, make: Callable[[Mapping[str, Any], Any], list[Setting]]) -> Callable[..., list[Setting]]:
    """Gradient-attribution settings of ``localization.attribution.<key>``, in the transfer
    DAG only with ``attribution.transfer`` (its schema default: false)."""
    def planned(config: Mapping[str, Any]) -> list[Setting]:
        attr = config["localization"].get("attribution") or {}
        if not attr.get("transfer", False) or not attr.get(key):
            return []
        return unique(make(config, attr[key]))
    return planned


def _k(setting: Any) -> float:
    return setting.k


def _budget(setting: Any) -> Setting:
    return setting.budget


register(Family("wanda", "neurons", "localization.neurons", NeuronSetting.parse, _wanda, "activations", BAND,
                learn="prunebias.methods.neurons:neuron_masks", dose=lambda s: s.p_black))
register(Family("attention", "heads", "localization.heads.k", _only(HeadSetting.parse, lambda s: not s.greedy,
                                                                    "one-shot head"),
                _attention, "attention", HEADS, learn="prunebias.methods.heads:attention_masks", dose=_k))
register(Family("greedy", "heads", "localization.heads.greedy", _only(HeadSetting.parse, lambda s: s.greedy,
                                                                      "greedy head"),
                _greedy, "model_runs", HEADS, dose=_k))
register(Family("grad_weights", "neurons", "localization.attribution.neurons",
                _only(GradNeuronSetting.parse, lambda s: not s.whole, "gradient weight"),
                _attribution("neurons", lambda c, _: [GradNeuronSetting(s) for s in _wanda(c)]), "gradients", BAND,
                learn="prunebias.methods.attribution_select:weight_masks", budget=_budget))
register(Family("grad_mlp", "neurons", "localization.attribution.mlp_neurons",
                _only(GradNeuronSetting.parse, lambda s: s.whole, "gradient MLP-neuron"),
                _attribution("mlp_neurons", lambda c, _: [GradNeuronSetting(s, whole=True) for s in _wanda(c)]),
                "gradients", UNITS, learn="prunebias.methods.attribution_select:mlp_neuron_masks", budget=_budget))
register(Family("grad_heads", "heads", "localization.attribution.heads",
                _only(GradHeadSetting.parse, lambda s: s.score == "gate", "gate-attribution head"),
                _attribution("heads", lambda c, ks: [GradHeadSetting(k) for k in ks]), "gradients", HEADS,
                learn="prunebias.methods.attribution_select:gate_head_masks", dose=_k))
register(Family("patch_heads", "heads", "localization.attribution.patch_heads",
                _only(GradHeadSetting.parse, lambda s: s.score == "patch", "attribution-patching head"),
                _attribution("patch_heads", lambda c, ks: [GradHeadSetting(k, "patch") for k in ks]), "gradients",
                HEADS, learn="prunebias.methods.attribution_select:patch_head_masks", dose=_k, needs=frozenset({"patching"})))


def _directions(config: Mapping[str, Any]) -> list[Setting]:
    d = config["localization"].get("directions") or {}
    return unique([DirectionSetting(depth, pos) for depth in d.get("depths", []) for pos in d.get("positions", [])])


register(Family("direction", "directions", "localization.directions", DirectionSetting.parse, _directions,
                "residuals", SPHERE, learn="prunebias.methods.directions:direction_masks"))
