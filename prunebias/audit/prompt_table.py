"""Prompt tables: prompts supplied verbatim from a CSV instead of built from templates.

Two layouts, told apart by the header:

- the workflow's own: ``scenario, variation, level, name, race, gender, prompt`` and
  optionally ``answer_prefix`` and ``range`` ("[low, high]");
- the audit paper's published layout (arXiv 2402.14875): ``scenario, variation,
  name_group, name, context_level, prompt_text``, with ``name_group`` one of white_men,
  white_women, black_men, black_women.

A context is named by the slugs of its scenario and variation (``public office`` /
``City Council Member`` -> ``public_office-city_council_member``). A table may hold
several levels of a context: the context's detail level (``prompt_level`` or
``context_overrides.{context}.detail_level``) picks its rows. Range, outcome, percent and
unit come from ``context_overrides``, else the table's ``range``, else the scenario of the
same slug in the scenarios file, else a permissive [0, 1e15]. The names (with race and
gender) come from the table too. Pure functions; errors name the file, the row and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from prunebias.audit.contexts import OUTCOMES, PERCENT_MODES, Context, _check_range
from prunebias.errors import ConfigError
from prunebias.files import read_csv_text
from prunebias.audit.names import name_occurrences

OWN = ["scenario", "variation", "level", "name", "race", "gender", "prompt"]
OWN_OPTIONAL = ["answer_prefix", "range"]
AUDIT = ["scenario", "variation", "name_group", "name", "context_level", "prompt_text"]
GROUPS = {"white_men": ("white", "man"), "white_women": ("white", "woman"),
          "black_men": ("black", "man"), "black_women": ("black", "woman")}
DEFAULT_RANGE = (0.0, 1e15)
ROWS = ["context", "scenario", "variation", "level", "name", "race", "gender", "prompt", "answer_prefix", "range"]


def slug(text: str) -> str:
    """Lower-case letters, digits and '_' ("City Council Member" -> "city_council_member")."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_")


def detect_layout(columns: list[str], where: str) -> str:
    cols = set(columns)
    if set(AUDIT) <= cols:
        return "audit"
    if set(OWN) <= cols:
        return "own"
    missing_own, missing_audit = [c for c in OWN if c not in cols], [c for c in AUDIT if c not in cols]
    raise ConfigError(where, f"the header matches neither layout (missing {missing_own} for the workflow's own, "
                      f"{missing_audit} for the audit's)",
                      f"use the columns {','.join(OWN)}[,answer_prefix,range] or {','.join(AUDIT)}")


def read_prompt_table(path: str | Path) -> pd.DataFrame:
    """The table in the workflow's own layout, with a ``context`` column; checked."""
    p = Path(path)
    raw = read_csv_text(p, "prompt table", "prompt_table")
    layout = detect_layout(list(raw.columns), str(p))
    if raw.empty:
        raise ConfigError(str(p), "the table has a header but no rows", "add one row per context, level and name")
    if layout == "audit":
        unknown = raw[~raw["name_group"].str.strip().isin(list(GROUPS))]
        if len(unknown):
            row = unknown.index[0] + 2
            raise ConfigError(f"{p}: row {row}", f"unknown name_group '{unknown['name_group'].iloc[0]}'",
                              f"use one of {list(GROUPS)}")
        race_gender = raw["name_group"].str.strip().map(GROUPS)
        df = pd.DataFrame({"scenario": raw["scenario"], "variation": raw["variation"], "level": raw["context_level"],
                           "name": raw["name"], "race": race_gender.str[0], "gender": race_gender.str[1],
                           "prompt": raw["prompt_text"], "answer_prefix": "", "range": ""})
    else:
        df = raw[OWN].copy()
        for c in OWN_OPTIONAL:
            df[c] = raw[c] if c in raw.columns else ""
    for c in df.columns:
        df[c] = df[c].astype(str).str.strip() if c not in ("prompt", "answer_prefix") else df[c].astype(str)
    df["level"] = df["level"].str.lower()
    df.insert(0, "context", df["scenario"].map(slug) + "-" + df["variation"].map(slug))
    _check_rows(df, p)
    return df[ROWS].reset_index(drop=True)


def _check_rows(df: pd.DataFrame, p: Path) -> None:
    for i, r in df.iterrows():
        where = f"{p}: row {i + 2}"
        if not slug(r["scenario"]) or not slug(r["variation"]):
            raise ConfigError(where, "empty scenario or variation", "fill both in")
        if r["race"] not in ("white", "black"):
            raise ConfigError(where, f"race '{r['race']}'", "race must be white or black")
        if not r["name"]:
            raise ConfigError(where, "empty name", "fill it in")
        if not name_occurrences(r["prompt"], r["name"]):  # several times is fine (the audit's chess prompts)
            raise ConfigError(where, f"the prompt does not contain its name '{r['name']}' (as a whole word)",
                              "write the subject's name, as in the name column, into the prompt")
    key = ["context", "level", "name"]
    dup = df[df.duplicated(key, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        rows = [int(i) + 2 for i in dup.index[(dup[key] == first[key]).all(axis=1)]]
        raise ConfigError(f"{p}: rows {rows}", f"duplicate rows for ({first['context']}, {first['level']}, "
                          f"{first['name']})", "keep one prompt per context, level and name")
    people = df.drop_duplicates(["name", "race", "gender"])
    clash = people[people.duplicated("name", keep=False)]
    if len(clash):
        raise ConfigError(str(p), f"name '{clash['name'].iloc[0]}' has more than one race or gender",
                          "give each name one race and gender throughout the table")


def table_names(rows: pd.DataFrame, where: str = "config: prompt_table") -> pd.DataFrame:
    """The table's names in the layout of ``prunebias.audit.names.load_names`` (first name = the
    first word; the whole name goes into prompts); ``where``: the table's file, for errors."""
    people = rows.drop_duplicates("name")[["name", "race", "gender"]].reset_index(drop=True)
    parts = people["name"].str.split(" ", n=1)
    out = pd.DataFrame({"first_name": parts.str[0], "surname": parts.str[1].fillna(""), "race": people["race"],
                        "gender": people["gender"], "source": "prompt_table", "name": people["name"]})
    for r in ("white", "black"):
        if not (out["race"] == r).any():
            raise ConfigError(where, f"no names with race '{r}' in the selected contexts",
                              "bias needs names of both races: add rows, or select other contexts")
    return out


def table_contexts(rows: pd.DataFrame, selected: list[str], prompt_level: str, overrides: Mapping[str, Any],
                   scenarios: Mapping[str, Any], where: str) -> dict[str, Context]:
    """One Context per selected context name (all of the table's when ``selected`` is
    empty), its prompts verbatim by name (``extra['prompts']``)."""
    available = list(dict.fromkeys(rows["context"]))
    names = selected or available
    for n in names:
        if n not in available:
            raise ConfigError(f"config: contexts: '{n}'", f"not a context of the prompt table {where}",
                              f"use one of {available[:8]}{'...' if len(available) > 8 else ''}")
    for k in overrides:
        if k not in names:
            raise ConfigError(f"config: context_overrides: '{k}'", "override for a context that is not selected",
                              f"select it under contexts or fix the name (selected: {names[:6]}...)")
    return {n: _context(n, rows[rows["context"] == n], prompt_level, dict(overrides.get(n) or {}), scenarios, where)
            for n in names}


def _context(name: str, part: pd.DataFrame, prompt_level: str, ov: dict[str, Any], scenarios: Mapping[str, Any],
             where: str) -> Context:
    here = f"{where}: context '{name}'"
    level = ov.pop("detail_level", prompt_level)
    levels = sorted(set(part["level"]))
    if level not in levels:
        if len(levels) != 1:
            raise ConfigError(here, f"no rows at level '{level}' (the table has {levels})",
                              f"set context_overrides.{name}.detail_level to one of them")
        level = levels[0]  # a table with one level per context: that level, whatever prompt_level says
    rows = part[part["level"] == level]
    scen_slug, var_slug = name.split("-", 1)
    scen = scenarios.get(scen_slug) or {}
    var = ((scen.get("variations") or {}).get(var_slug) or {})
    table_range = _table_range(rows, here)
    rng = ov.pop("range", table_range or var.get("range") or scen.get("range") or list(DEFAULT_RANGE))
    prefixes = set(rows["answer_prefix"])
    prefix = ov.pop("answer_prefix", prefixes.pop() if len(prefixes) == 1 else None)
    if prefix is None:
        raise ConfigError(here, "rows with different answer_prefix", "give all rows of a context one answer_prefix")
    outcome = ov.pop("outcome", scen.get("outcome", "value"))
    percent = ov.pop("percent", scen.get("percent", "keep"))
    unit = ov.pop("unit", scen.get("unit", ""))
    if ov:
        raise ConfigError(f"config: context_overrides.{name}", f"{sorted(ov)} do not apply to a prompt-table context",
                          "use detail_level, answer_prefix, range, outcome, percent or unit")
    if outcome not in OUTCOMES or percent not in PERCENT_MODES:
        raise ConfigError(here, f"outcome {outcome!r} / percent {percent!r}", f"use {OUTCOMES} / {PERCENT_MODES}")
    return Context(name=name, scenario=scen_slug, variation=var_slug,
                   detail_level=level, template="", fields={},
                   answer_prefix=str(prefix), unit=str(unit), outcome=outcome, percent=percent,
                   range=_check_range([float(x) for x in rng], here),
                   prompts=dict(zip(rows["name"], rows["prompt"])))


def _table_range(rows: pd.DataFrame, where: str) -> list[float] | None:
    values = {v for v in rows["range"] if v}
    if not values:
        return None
    if len(values) > 1:
        raise ConfigError(where, f"rows with different ranges {sorted(values)}", "give all rows of a context one range")
    try:
        rng = yaml.safe_load(values.pop())
        out = [float(x) for x in rng]
    except Exception:  # noqa: BLE001 - any unreadable range
        raise ConfigError(where, "range is not '[low, high]'", 'write e.g. "[0, 100000]"') from None
    if len(out) != 2 or not all(math.isfinite(x) for x in out):
        raise ConfigError(where, f"range {out} is not [low, high]", 'write e.g. "[0, 100000]"')
    return out


def check_every_name(contexts: Mapping[str, Context], names: pd.DataFrame, where: str) -> None:
    """Every selected context has a prompt for every name (bias compares the same names)."""
    for ctx in contexts.values():
        missing = [n for n in names["name"] if n not in ctx.prompts]
        if missing:
            raise ConfigError(f"{where}: context '{ctx.name}' (level {ctx.detail_level})",
                              f"no prompt for {len(missing)} name(s) of the table, e.g. {missing[:3]}",
                              "give every name a row in every selected context, or select fewer contexts")
