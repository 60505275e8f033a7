"""Which modules of a decoder-only model we hook, score and prune.

Supported: any Hugging Face causal LM whose decoder layers use the Llama module names
(Llama 2/3, Mistral, Qwen2, SmolLM2, Gemma 3 ...): ``model.layers[i].self_attn.{q,k,v,o}_proj``
and ``model.layers[i].mlp.{gate,up,down}_proj``, all ``nn.Linear``; grouped-query
attention is fine (heads are query heads).

Input *sites* (the tensors whose per-channel norms Wanda needs), with the TransformerLens
hook each corresponds to:

| site       | feeds                | TransformerLens          | width              |
|------------|----------------------|--------------------------|--------------------|
| `attn_in`  | q_proj, k_proj, v_proj | `blocks.L.ln1.hook_normalized` | hidden         |
| `attn_z`   | o_proj               | `blocks.L.attn.hook_z` (flattened) | heads x head_dim |
| `mlp_in`   | gate_proj, up_proj   | `blocks.L.ln2.hook_normalized` | hidden         |
| `mlp_post` | down_proj            | `blocks.L.mlp.hook_post` | intermediate       |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunebias.errors import ConfigError

SITES = {"attn_in": ("self_attn", "q_proj"), "attn_z": ("self_attn", "o_proj"),
         "mlp_in": ("mlp", "gate_proj"), "mlp_post": ("mlp", "down_proj")}
MODULES = {"q_proj": ("self_attn", "attn_in"), "k_proj": ("self_attn", "attn_in"),
           "v_proj": ("self_attn", "attn_in"), "o_proj": ("self_attn", "attn_z"),
           "gate_proj": ("mlp", "mlp_in"), "up_proj": ("mlp", "mlp_in"), "down_proj": ("mlp", "mlp_post")}


@dataclass(frozen=True)
class Geometry:
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden: int


def decoder_layers(model: Any) -> Any:
    """The list of decoder layers, or a ConfigError naming what is missing."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(f"model {type(model).__name__}", "has no `model.layers` list of decoder layers",
                          "use a Llama-style causal LM (Llama, Mistral, Qwen2, SmolLM2, Gemma 3)")
    return layers


def check_architecture(model: Any) -> Geometry:
    """Refuse models whose layers lack the Llama module names; return head geometry."""
    import torch.nn as nn  # here: the DAG imports this module; torch loads only in jobs

    layers = decoder_layers(model)
    for i, layer in enumerate(layers):
        for mod, (block, _) in MODULES.items():
            parent = getattr(layer, block, None)
            lin = getattr(parent, mod, None)
            if not isinstance(lin, nn.Linear):
                raise ConfigError(f"model {type(model).__name__}",
                                  f"layer {i} has no nn.Linear `{block}.{mod}`",
                                  "use a model with Llama module names (q/k/v/o_proj, gate/up/down_proj)")
    cfg = model.config
    n_heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    return Geometry(len(layers), n_heads, getattr(cfg, "num_key_value_heads", None) or n_heads, head_dim,
                    cfg.hidden_size)


# model types whose decoder layers use the Llama module names (checked on each when added)
LLAMA_STYLE = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma3_text", "smollm3"})


def check_model_config(model_dir: str | Path, where: str) -> None:
    """Refuse, before any job, a model directory whose config.json describes layers without
    the Llama module names (a GPT-2 would otherwise pass the dry-run and fail on the
    cluster after queueing). Known Llama-style types pass at once; any other type is built
    on the meta device (no weights, no memory) and checked like a loaded model."""
    path = Path(model_dir) / "config.json"
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigError(where, f"{path} is not a readable config.json ({exc.__class__.__name__})",
                          "give a Hugging Face model directory (save_pretrained output)") from None
    if model_type in LLAMA_STYLE:
        return
    import torch  # here, not at the top: a dry-run loads torch only for an unknown model type
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path.parent))
    except Exception as exc:  # an unknown or non-causal architecture: transformers' own error inside
        raise ConfigError(where, f"its config.json (model_type {model_type!r}) is not a causal LM that transformers "
                                 f"can build ({exc.__class__.__name__}: {str(exc)[:200]})",
                          "use a Llama-style causal LM (Llama, Mistral, Qwen2, SmolLM2, Gemma 3)") from None
    try:
        check_architecture(model)
    except ConfigError as exc:
        raise ConfigError(where, f"a {model_type} model: {exc.problem}", exc.fix) from None


def linear(model: Any, layer: int, module: str) -> Any:
    block, _ = MODULES[module]
    return getattr(getattr(decoder_layers(model)[layer], block), module)
