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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_snakemake, small_config

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


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    BASE.update(small_config(tiny_model_dir))
    return BASE


@pytest.mark.slow
def test_mutated_configs_plan_or_are_refused_with_a_key(base, tmp_path_factory):
    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        where, kind, value = data.draw(mutation(base))
        cfg = mutate(copy.deepcopy(base), where, kind, value)
        work = tmp_path_factory.mktemp("fuzz")
        proc = run_snakemake(work, cfg, "-n", check=False, timeout=300)
        out = proc.stdout + proc.stderr
        shown = f"{'.'.join(map(str, where))} {kind} {value!r}:\n{out[-1500:]}"
        if proc.returncode == 0:
            assert "This was a dry-run" in out or "Nothing to be done" in out, shown
            return
        assert any(r in out for r in REFUSED), shown
        assert not any(bad in out for bad in INTERNAL), shown

    check()
