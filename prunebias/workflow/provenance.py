"""What a run's figures depend on beyond the config: the model's weights (sha256), the
dtype and device the model jobs resolve ``auto`` to, the library versions, the CPU
features that decide the dtype (the headline adds the workflow's commit and its date:
this record stays byte-identical between reruns on one machine and folder).

Why: ``dtype: auto`` is bfloat16 on CPUs with AVX-512 bf16 or AMX and float32 elsewhere,
and sampled answers differ between the two, so two machines of one kind can print
different tables from one commit. Every headline records this beside its numbers.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from prunebias.model.modeling import choose_device, choose_dtype


def weights_sha256(model_dir: str | Path) -> str:
    """sha256 over the model's safetensors files in name order (streamed: an 8B model too)."""
    h = hashlib.sha256()
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(model_dir: str | Path, dtype: str, device: str) -> dict[str, Any]:
    """The record for one model on the machine this runs on (a model job's node)."""
    dev = choose_device(device)
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return {
        "model_weights_sha256": weights_sha256(model_dir),
        "dtype": str(choose_dtype(dtype, dev)).removeprefix("torch."), "dtype_config": dtype,
        "device": dev, "cpu_avx512_bf16": bool(probe and probe()), "cpu_amx": bool(amx and amx()),
        "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
        "torch": torch.__version__, "transformers": _version("transformers"), "snakemake": _version("snakemake"),
    }
