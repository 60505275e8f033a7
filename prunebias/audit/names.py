"""Name lists: first name, optional surname, race, gender, source."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prunebias.errors import ConfigError
from prunebias.files import read_csv_text
from prunebias.seeds import derive_seed

COLUMNS = ["first_name", "surname", "race", "gender", "source"]
RACES = ("white", "black")


def name_occurrences(text: str, name: str) -> list[tuple[int, int]]:
    """Character spans of every occurrence of ``name`` in ``text`` as a whole word or words
    (not inside another word: "Jo" is not found in "John"). A prompt table's prompt may
    name its subject several times (the audit's chess prompts: three times)."""
    pattern = r"(?<!\w)" + re.escape(name) + r"(?!\w)"
    return [m.span() for m in re.finditer(pattern, text)]


def check_name_split(names: pd.DataFrame, where: str) -> None:
    """Under a name split every race x gender group needs two names or more: one to learn
    masks on and one held out (otherwise a race is missing on one side)."""
    counts = names.groupby(["race", "gender"]).size()
    few = counts[counts < 2]
    if len(few):
        groups = ", ".join(f"{r} {g} ({n})" for (r, g), n in few.items())
        raise ConfigError(where, f"localization.name_split needs two names or more per race and gender; "
                          f"these groups have fewer: {groups}",
                          "add names, or set localization.name_split: false (masks then learn on every name)")


def load_names(path: str | Path, use_surnames: bool = True) -> pd.DataFrame:
    """Read and check a names CSV; adds ``name`` (the text put into prompts).

    Every row needs a race in {white, black}; both races must be present, and no
    name may be a substring of another name (a prompt must contain its name and no other).
    """
    p = Path(path)
    df = read_csv_text(p, "names file", "names_file")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(str(p), f"missing column(s) {missing}", f"the header must be {','.join(COLUMNS)}")
    df = df[COLUMNS].copy()
    for col in COLUMNS:
        df[col] = df[col].str.strip()
    bad = df[~df["race"].isin(RACES)]
    if len(bad):
        raise ConfigError(str(p), f"row {bad.index[0] + 2}: race '{bad['race'].iloc[0]}'", f"race must be one of {RACES}")
    if (df["first_name"] == "").any():
        raise ConfigError(str(p), f"row {df.index[df['first_name'] == ''][0] + 2}: empty first_name", "fill it in")
    braces = df["first_name"].str.contains(r"[{}]") | df["surname"].str.contains(r"[{}]")
    if braces.any():  # a brace would be read as a template slot, or as a Snakemake wildcard in a path
        row = df.index[braces][0]
        raise ConfigError(str(p), f"row {row + 2}: the name '{df.loc[row, 'first_name']} {df.loc[row, 'surname']}' "
                          "holds a brace", "names are plain text: remove { and }")
    for r in RACES:
        if not (df["race"] == r).any():
            raise ConfigError(str(p), f"no names with race '{r}'", "bias needs names of both races")
    df["name"] = df["first_name"]
    if use_surnames:
        has = df["surname"] != ""
        df.loc[has, "name"] = df.loc[has, "first_name"] + " " + df.loc[has, "surname"]
    dup = df["name"][df["name"].duplicated()]
    if len(dup):
        raise ConfigError(str(p), f"duplicate name '{dup.iloc[0]}'", "remove the duplicate row")
    firsts = list(df["first_name"])
    for a in firsts:
        for b in firsts:
            if a != b and a in b:
                raise ConfigError(str(p), f"name '{a}' is part of name '{b}'",
                                  "names must not contain one another, so each prompt holds exactly one name")
    return df.reset_index(drop=True)


def split_names(names: pd.DataFrame, seed: int) -> dict[str, list[str]]:
    """A seeded half split of the names, balanced by race x gender: ``learn`` and ``holdout``.

    Within each (race, gender) group the names are shuffled with the seed and the first
    half (rounded down) learns masks; the rest is held out for evaluation. The split
    depends on the seed and the group's names only, not on row order.
    """
    learn: list[str] = []
    holdout: list[str] = []
    for (race, gender), g in names.groupby(["race", "gender"], sort=True):
        members = sorted(g["name"])
        rng = np.random.default_rng(derive_seed(seed, "name_split", race, gender))
        members = [members[i] for i in rng.permutation(len(members))]
        half = len(members) // 2
        learn += members[:half]
        holdout += members[half:]
    return {"learn": sorted(learn), "holdout": sorted(holdout)}


@dataclass(frozen=True)
class Fold:
    """One fit of the masks: the names they learn on and the names they are evaluated on
    (None: every name)."""

    learn: list[str] | None
    evaluate: list[str] | None

    def describe(self) -> dict[str, list[str] | None]:
        return {"learn_names": self.learn, "eval_names": self.evaluate}


def check_cross_fit(localization: dict) -> None:
    """Cross-fitting mirrors a name split: without one there is nothing to mirror."""
    if localization.get("cross_fit") and not localization["name_split"]:
        raise ConfigError("config: localization.cross_fit", "cross-fitting needs localization.name_split: true",
                          "set localization.cross_fit: false, or name_split: true")


def name_folds(names: pd.DataFrame, seed: int, name_split: bool, cross_fit: bool) -> list[Fold]:
    """The folds of the design.

    - no name split: one fold, learning and evaluated on every name (the paper's design);
    - a name split: one fold, learning on the ``learn`` half and evaluated on the held-out
      half (``split_names``);
    - cross-fitting: that fold and its mirror (learning on the held-out half, evaluated on
      the learning half), so every name is evaluated once, under a mask that never saw it:
      twice the evaluated names for twice the mask learning.
    """
    if not name_split:
        return [Fold(None, None)]
    halves = split_names(names, seed)
    folds = [Fold(halves["learn"], halves["holdout"])]
    if cross_fit:
        folds.append(Fold(halves["holdout"], halves["learn"]))
    return folds
