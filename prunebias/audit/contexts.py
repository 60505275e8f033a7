"""Decision contexts: scenario templates x variations, resolved from data files + config.

A context is named ``{scenario}-{variation}``. Its prompt is the scenario's template for
the context's detail level (``low``/``high``/``numeric``) with ``{name}`` and the variation's
fields substituted. Substitution is a plain text replacement of ``{identifier}`` slots:
nothing from config or data is evaluated, so text reaches the prompt verbatim.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from prunebias.errors import ConfigError

DETAIL_LEVELS = ("low", "high", "numeric")  # how much the prompt tells (not a transfer level)
OUTCOMES = ("value", "reverse_rank")
PERCENT_MODES = ("keep", "fraction")
SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME_PART = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Context:
    """Everything needed to build and analyse one context's prompts."""

    name: str
    scenario: str
    variation: str
    detail_level: str
    template: str
    fields: dict[str, str]
    answer_prefix: str
    unit: str
    outcome: str
    percent: str
    range: tuple[float, float]
    extra: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)  # a prompt table's prompts by name (else empty)

    def render(self, person: str) -> str:
        """The user message for one person's name: a prompt table's verbatim prompt
        (``prompts``), else the template with the name filled in."""
        if self.prompts:
            if person not in self.prompts:
                raise ConfigError(f"context '{self.name}'", f"the prompt table has no prompt for '{person}'",
                                  "give every name a row in every context it is used in")
            return self.prompts[person]
        return render_template(self.template, {**self.fields, "name": person}, self.name)

    def spec(self) -> dict[str, Any]:
        """A plain dict of the context (for Snakemake params: edits trigger reruns)."""
        d = asdict(self)
        d["range"] = list(self.range)
        return d


# the keys of context_overrides that are settings, not template fields
OVERRIDE_SETTINGS = ("detail_level", "template", "answer_prefix", "range", "outcome", "percent", "unit")


def template_slots(template: str) -> list[str]:
    """Slot names in order of appearance (with repeats)."""
    return SLOT.findall(template)


def render_template(template: str, values: Mapping[str, str], where: str = "template") -> str:
    """Replace every ``{slot}`` with its value; unknown slots are an error, not blanks."""
    missing = [s for s in template_slots(template) if s not in values]
    if missing:
        raise ConfigError(
            where,
            f"template uses slot(s) {sorted(set(missing))} that the variation does not define",
            "add those fields to the variation in data/scenarios.yaml or remove them from the template",
        )
    return SLOT.sub(lambda m: str(values[m.group(1)]), template)


def load_yaml(path: str | Path) -> Any:
    """Read YAML with an error that names the file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(str(p), "file not found", "check the path in config/config.yaml")
    try:
        with p.open() as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), f"not valid YAML ({exc})", "fix the YAML syntax") from exc


def _check_range(rng: Any, where: str) -> tuple[float, float]:
    if (
        not isinstance(rng, (list, tuple))
        or len(rng) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)
    ):
        raise ConfigError(where, f"range must be [low, high] numbers, got {rng!r}", "write e.g. range: [1, 1000]")
    lo, hi = float(rng[0]), float(rng[1])
    if not lo < hi:
        raise ConfigError(where, f"range low {lo} is not below high {hi}", "order the range as [low, high]")
    return lo, hi


def resolve_context(
    name: str,
    scenarios: Mapping[str, Any],
    detail_level: str = "low",
    overrides: Mapping[str, Any] | None = None,
    scenarios_file: str = "data/scenarios.yaml",
) -> Context:
    """Build one context from the scenarios data, the default detail level and config overrides.

    ``overrides`` (config ``context_overrides[name]``) may set detail_level, template,
    answer_prefix, range and any variation field; they win over the data file.
    """
    where = f"{scenarios_file}: context '{name}'"
    if name.count("-") != 1:
        raise ConfigError(
            where, "a context name is '{scenario}-{variation}' with exactly one '-'",
            "use names such as purchase-bicycle; variations use '_' instead of spaces or '-'",
        )
    scen_name, var_name = name.split("-")
    if scen_name not in scenarios:
        raise ConfigError(where, f"unknown scenario '{scen_name}'", f"use one of {sorted(scenarios)}")
    scen = scenarios[scen_name] or {}
    variations = scen.get("variations") or {}
    if var_name not in variations:
        raise ConfigError(
            where, f"unknown variation '{var_name}' of scenario '{scen_name}'", f"use one of {sorted(variations)}"
        )
    ov = dict(overrides or {})
    if "level" in ov:
        raise ConfigError(f"config: context_overrides.{name}.level", "the prompt's level is now called detail_level",
                          f"write detail_level: {ov['level']}")
    level = ov.pop("detail_level", detail_level)
    if level not in DETAIL_LEVELS:
        raise ConfigError(where, f"unknown detail level '{level}'", f"use one of {list(DETAIL_LEVELS)}")
    templates = scen.get("templates") or {}
    template = ov.pop("template", templates.get(level))
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(where, f"scenario '{scen_name}' has no template for level '{level}'",
                          f"add templates.{level} to the scenario or choose another level")
    template = " ".join(template.split())
    n_name = template_slots(template).count("name")
    if n_name != 1:
        raise ConfigError(
            where, f"the template must contain the slot {{name}} exactly once (found {n_name})",
            "put a single {name} where the person's name goes",
        )
    var = dict(variations[var_name] or {})
    rng = ov.pop("range", var.pop("range", scen.get("range")))
    fields = {k: str(v) for k, v in var.items()}
    prefix = ov.pop("answer_prefix", scen.get("answer_prefix", ""))
    outcome = ov.pop("outcome", scen.get("outcome", "value"))
    percent = ov.pop("percent", scen.get("percent", "keep"))
    unit = ov.pop("unit", scen.get("unit", ""))
    slots = set(template_slots(template))
    for k, v in ov.items():  # remaining overrides are variation fields
        if k == "name":
            raise ConfigError(where, "'name' cannot be overridden", "remove it from context_overrides")
        if k not in slots and k not in fields:  # a typo would change nothing and still rerun the context
            raise ConfigError(f"config: context_overrides.{name}.{k}",
                              f"'{k}' is neither a setting ({', '.join(OVERRIDE_SETTINGS)}) nor a field of the "
                              f"template (its slots: {', '.join(sorted(slots - {'name'})) or 'none'})",
                              "check the spelling, or add the slot to the template")
        fields[k] = str(v)
    if outcome not in OUTCOMES:
        raise ConfigError(where, f"unknown outcome '{outcome}'", f"use one of {list(OUTCOMES)}")
    if percent not in PERCENT_MODES:
        raise ConfigError(where, f"unknown percent mode '{percent}'", f"use one of {list(PERCENT_MODES)}")
    if not isinstance(prefix, str):
        raise ConfigError(where, "answer_prefix must be a string", 'quote it, e.g. answer_prefix: "My offer is $"')
    ctx = Context(
        name=name, scenario=scen_name, variation=var_name, detail_level=level, template=template,
        fields=fields, answer_prefix=prefix, unit=str(unit), outcome=outcome, percent=percent,
        range=_check_range(rng, where),
    )
    render_template(template, {**fields, "name": "X"}, where)  # all slots resolvable
    return ctx


def expand_context_names(contexts: list[str], sets: list[str], context_sets: Mapping[str, list[str]],
                         sets_file: str = "data/context_sets.yaml", allow_empty: bool = False) -> list[str]:
    """Union of explicit contexts and named sets, first occurrence order, no duplicates
    (``allow_empty``: none selected is allowed, e.g. every context of a prompt table)."""
    out: list[str] = []
    for s in sets:
        if s not in context_sets:
            raise ConfigError(f"config: context_sets: '{s}'", f"no such set in {sets_file}",
                              f"use one of {sorted(context_sets)}")
        out.extend(context_sets[s])
    out.extend(contexts)
    seen: set[str] = set()
    uniq = [c for c in out if not (c in seen or seen.add(c))]
    if not uniq and not allow_empty:
        raise ConfigError("config", "no contexts selected", "list contexts or context_sets in config/config.yaml")
    return uniq


def resolve_all(config: Mapping[str, Any], scen_file: str | Path, sets_file: str | Path) -> dict[str, Context]:
    """All configured contexts, validated; raises ConfigError on the first problem.

    ``scen_file`` and ``sets_file`` are the resolved paths of ``scenarios_file`` and
    ``context_sets_file`` (each resolved on its own: a local scenarios file may be used
    with the shipped context sets).
    """
    scenarios = load_yaml(scen_file) or {}
    sets = load_yaml(sets_file) or {}
    for s in scenarios:
        if not NAME_PART.match(s):
            raise ConfigError(f"{scen_file}: scenario '{s}'", "scenario names are lower-case letters, digits, '_'",
                              "rename it (no '-' or spaces)")
        for v in (scenarios[s] or {}).get("variations") or {}:
            if not NAME_PART.match(v):
                raise ConfigError(f"{scen_file}: {s}.variations.{v}",
                                  "variation names are lower-case letters, digits, '_'", "rename it (no '-' or spaces)")
    names = expand_context_names(list(config.get("contexts") or []), list(config.get("context_sets") or []),
                                 sets, str(sets_file))
    overrides = config.get("context_overrides") or {}
    for k in overrides:
        if k not in names:
            raise ConfigError(f"config: context_overrides: '{k}'", "override for a context that is not selected",
                              f"select it under contexts or fix the name (selected: {names[:6]}...)")
    return {
        n: resolve_context(n, scenarios, config.get("prompt_level", "low"), overrides.get(n), str(scen_file))
        for n in names
    }
