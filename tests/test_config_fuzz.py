"""A config fuzzer (issue 26): mutated configs either plan a DAG or are refused with a
message naming a key or file, never with a traceback or a Snakemake-internal error.

Hypothesis mutates one place of a valid tiny config at a time: a wrong type, an
out-of-range number, an unknown key at any depth, an empty or duplicated list, an odd
string. Each example is a real dry-run (derandomized: the same examples on every run, so
CI cannot flake; a new finding shows up as a failing example to fix).
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import REPO, run_snakemake, small_config

REFUSED = ("Invalid input", "Error validating config file")
INTERNAL = ("Traceback", "KeyError", "TypeError", "AttributeError", "IndexError", "WildcardError",
            "unhashable", "NoneType")


def paths(cfg, prefix=()):
    """Every (path) to a value of the config tree, dicts and lists included."""
    out = []
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            out.append(prefix + (k,))
            out += paths(v, prefix + (k,))
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            out.append(prefix + (i,))
            out += paths(v, prefix + (i,))
    return out


ODD = st.sampled_from([-1, 0, 10**12, -0.5, 1e308, "", " ", "x", "{name}", "é\u0000", [], {}, [[]], None, True,
                       "../../etc/passwd", "NaN"])


@st.composite
def mutation(draw, base):
    where = draw(st.sampled_from(paths(base)))
    kind = draw(st.sampled_from(["replace", "unknown_key", "empty", "duplicate"]))
    value = draw(ODD)
    return where, kind, value


def mutate(cfg, where, kind, value):
    parent = cfg
    for k in where[:-1]:
        parent = parent[k]
    key = where[-1]
    target = parent[key]
    if kind == "unknown_key" and isinstance(target, dict):
        target["frobnicate"] = value
    elif kind == "unknown_key" and isinstance(parent, dict):
        parent["frobnicate"] = value
    elif kind == "empty" and isinstance(target, (list, dict)):
        parent[key] = type(target)()
    elif kind == "duplicate" and isinstance(target, list) and target:
        parent[key] = target + target[:1]
    else:
        parent[key] = value
    return cfg


BASE: dict = {}
# derandomized (the same examples on every run) and without shrinking (a finding fails at once)
FUZZ = dict(deadline=None, derandomize=True, database=None, phases=[Phase.generate],
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_planned_or_refused(work, cfg, shown: str, names: str | None = None) -> None:
    """The dry-run plans a DAG, or refuses with a message (naming ``names`` if given), never
    a traceback or a Snakemake-internal error."""
    proc = run_snakemake(work, cfg, "-n", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    shown = f"{shown}:\n{out[-1500:]}"
    if proc.returncode == 0:
        assert "This was a dry-run" in out or "Nothing to be done" in out, shown
        return
    assert any(r in out for r in REFUSED) and (names is None or names in out), shown
    assert not any(bad in out for bad in INTERNAL), shown


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    BASE.update(small_config(tiny_model_dir))
    return BASE


@pytest.mark.slow
def test_mutated_configs_plan_or_are_refused_with_a_key(base, tmp_path_factory):
    @settings(max_examples=30, **FUZZ)
    @given(st.data())
    def check(data):
        where, kind, value = data.draw(mutation(base))
        cfg = mutate(copy.deepcopy(base), where, kind, value)
        assert_planned_or_refused(tmp_path_factory.mktemp("fuzz"), cfg, f"{'.'.join(map(str, where))} {kind} {value!r}")

    check()


# Data files: one text-level mutation of a valid names file or prompt table at a time.
FILE_EDITS = st.sampled_from(["drop_column", "blank_cell", "odd_bytes", "duplicate_row", "empty", "header_only",
                              "brace", "wrong_label", "extra_column", "quote"])


def mutate_csv(text: str, edit: str, row: int, col: int) -> bytes:
    """``text`` (a CSV with a header) with one edit at data row ``row`` / column ``col``."""
    lines = text.splitlines()
    header, body = lines[0].split(","), [line.split(",") for line in lines[1:]]
    r, c = body[row % len(body)], col % len(header)
    if edit == "drop_column":
        header, body = header[:c] + header[c + 1:], [b[:c] + b[c + 1:] for b in body]
    elif edit == "blank_cell":
        r[c] = ""
    elif edit == "duplicate_row":
        body.append(list(r))
    elif edit == "empty":
        return b""
    elif edit == "header_only":
        body = []
    elif edit == "brace":
        r[c] = r[c] + "{name}"
    elif edit == "wrong_label":
        r[c] = "frobnicate"
    elif edit == "extra_column":
        header, body = header + ["frobnicate"], [b + ["1"] for b in body]
    elif edit == "quote":
        r[c] = '"' + r[c]
    out = "\n".join(",".join(x) for x in [header, *body]) + "\n"
    if edit == "odd_bytes":
        return out.encode().replace(r[c].encode(), r[c].encode() + b"\xe9\x00", 1)
    return out.encode()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["names", "prompt_table"])
def test_mutated_names_files_and_prompt_tables_plan_or_are_refused_with_the_file(which, base, tmp_path_factory):
    """The same promise for the data files a user edits by hand: a mutated names file or
    prompt table plans a DAG or is refused naming the file, never a traceback."""
    from test_prompt_table import audit_table

    from prunebias.audit.names import load_names

    names = load_names(REPO / base["names_file"], use_surnames=False)
    valid = (REPO / base["names_file"]).read_text() if which == "names" else audit_table(names).to_csv(index=False)

    @settings(max_examples=12, **FUZZ)
    @given(FILE_EDITS, st.integers(0, 200), st.integers(0, 10))
    def check(edit, row, col):
        work = tmp_path_factory.mktemp("fuzzfile")
        data = work / ("names.csv" if which == "names" else "table.csv")
        data.write_bytes(mutate_csv(valid, edit, row, col))
        cfg = copy.deepcopy(base)
        if which == "names":
            cfg["names_file"] = str(data)
        else:
            cfg.update(prompt_table=str(data), contexts=[], context_overrides={})
        assert_planned_or_refused(work, cfg, f"{which} {edit} row {row} col {col}", names=data.name)

    check()
