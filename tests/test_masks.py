"""Mask files: the common mask of a pool, computed on the packed bits in bounded memory."""

import tracemalloc

import numpy as np
import pytest

from prunebias.errors import ConfigError
from prunebias.methods.masks import (combine_mem_mb, intersect_neuron_masks, n_folds, read_folds, read_mask, read_meta,
                             write_common_neuron_mask, write_mask)

META = {"model": {"name": "m", "config_sha256": "x", "n_layers": 2, "n_heads": 4}, "method": {"name": "neurons"},
        "source": "s", "sources": ["s"], "combine": "single"}


def test_common_mask_on_packed_bits_equals_the_intersection(tmp_path):
    rng = np.random.default_rng(0)
    shapes = {"layers.0.q_proj": (13, 7), "layers.1.down_proj": (5, 11)}  # sizes not multiples of 8
    paths = []
    for i in range(4):
        arrays = {k: rng.random(s) < 0.7 for k, s in shapes.items()}
        paths.append(tmp_path / f"m{i}.npz")
        write_mask(paths[-1], "neurons", META, arrays)
    n = write_common_neuron_mask(paths, tmp_path / "common.npz", {**META, "combine": "common"})
    got = read_mask(tmp_path / "common.npz")
    want = intersect_neuron_masks([read_mask(p) for p in paths])
    for k in shapes:
        assert (got.arrays[k] == want[k]).all() and got.meta["counts"][k] == int(want[k].sum())
    assert n == got.meta["n_pruned"] > 0 and got.meta["combine"] == "common"
    assert got.meta["n_total"] == read_meta(paths[0])["n_total"]


def test_common_mask_memory_stays_near_one_packed_mask(tmp_path):
    """12 members of 4 matrices of 2048 x 4096 (33.6M weights: 4.2 MB packed, 33.6 MB as
    booleans per member, 403 MB for all members unpacked): the peak of the traced
    allocations stays within 4 packed masks."""
    shape = (2048, 4096)
    keys = [f"layers.{i}.gate_proj" for i in range(4)]
    rng = np.random.default_rng(1)
    base = rng.random(shape) < 0.01
    noise = rng.random(shape) < 0.01
    paths = []
    for i in range(12):
        arrays = {k: base | np.roll(noise, 97 * i + 13 * j) for j, k in enumerate(keys)}
        paths.append(tmp_path / f"m{i}.npz")
        write_mask(paths[-1], "neurons", META, arrays)
    del arrays, noise
    packed = 4 * shape[0] * shape[1] / 8
    tracemalloc.start()
    try:
        n = write_common_neuron_mask(paths, tmp_path / "common.npz", META)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * packed, f"peak {peak / 2**20:.1f} MiB, one packed mask {packed / 2**20:.1f} MiB"
    assert n >= 4 * int(base.sum())  # the shared weights survive
    assert combine_mem_mb(paths[0]) == int(2 * 4 * shape[0] * shape[1] / 8 / 2**20 + 500)
    assert combine_mem_mb(paths[0], attempt=2) == 2 * combine_mem_mb(paths[0])
    assert combine_mem_mb(tmp_path / "not_built.npz") == 1000


def test_a_member_of_another_shape_is_named(tmp_path):
    write_mask(tmp_path / "a.npz", "neurons", META, {"layers.0.q_proj": np.ones((4, 4), bool)})
    write_mask(tmp_path / "b.npz", "neurons", META, {"layers.0.q_proj": np.ones((4, 5), bool)})
    with pytest.raises(ConfigError, match="b.npz"):
        write_common_neuron_mask([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "c.npz", META)
    assert not (tmp_path / "c.npz").exists()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="bad.npz"):
        read_meta(tmp_path / "bad.npz")


def test_cross_fitting_folds_round_trip_and_combine_fold_by_fold(tmp_path):
    """A mask file with two folds: each fold reads back as written with its own counts, a
    file without folds reads as one, and the common mask of a pool intersects fold k of
    every member with fold k only."""
    rng = np.random.default_rng(2)
    shapes = {"layers.0.q_proj": (9, 7), "layers.1.down_proj": (5, 11)}
    paths, folds = [], []
    for i in range(3):
        f0 = {k: rng.random(s) < 0.6 for k, s in shapes.items()}
        f1 = {k: rng.random(s) < 0.3 for k, s in shapes.items()}
        paths.append(tmp_path / f"m{i}.npz")
        write_mask(paths[-1], "neurons", META, f0, [f1])
        folds.append((f0, f1))
    got = read_folds(paths[0])
    assert len(got) == 2 and n_folds(read_meta(paths[0])) == 2
    for mask, want in zip(got, folds[0]):
        for k in shapes:
            assert (mask.arrays[k] == want[k]).all() and mask.meta["counts"][k] == int(want[k].sum())
        assert mask.meta["n_pruned"] == sum(int(a.sum()) for a in want.values())
    assert got[0].meta["n_pruned"] != got[1].meta["n_pruned"]
    with pytest.raises(ConfigError, match="fold 2"):
        read_mask(paths[0], 2)
    n = write_common_neuron_mask(paths, tmp_path / "common.npz", META)
    common = read_folds(tmp_path / "common.npz")
    for f in (0, 1):
        for k in shapes:
            assert (common[f].arrays[k] == np.logical_and.reduce([m[f][k] for m in folds])).all()
    assert n == common[0].meta["n_pruned"]
    write_mask(tmp_path / "one.npz", "neurons", META, folds[0][0])
    assert len(read_folds(tmp_path / "one.npz")) == 1
    with pytest.raises(ConfigError, match="one.npz"):  # members must hold as many folds
        write_common_neuron_mask([paths[0], tmp_path / "one.npz"], tmp_path / "c2.npz", META)
    heads = {"heads": rng.random((2, 4)) < 0.5, "scores": rng.random((2, 4))}
    write_mask(tmp_path / "h.npz", "heads", META, heads, [{**heads, "heads": ~heads["heads"]}])
    h = read_folds(tmp_path / "h.npz")
    assert (h[1].arrays["heads"] == ~heads["heads"]).all() and "scores" in h[1].arrays
