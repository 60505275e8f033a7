"""Stage 4b: attention-head masks for one source -> ``results/masks/heads/{variant}/{source}.npz``.

Each head's score comes from the cached attention mass on the name's tokens, averaged
over the White and over the Black prompts of the source's contexts: ``sum`` (White +
Black, the paper) or ``diff`` (|White - Black|), and the mask is the top-k heads
(one-shot); or ``setdiff``: the top k heads by Black attention minus the top k_white
by White attention (the paper's final design: top 40 minus top 5).
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch

from workflow_scripts.errors import ConfigError
from workflow_scripts.scoring import head_scores, top_k_heads

VARIANT = re.compile(r"^(?P<score>sum|diff|greedy)_k(?P<k>\d+)$|^setdiff_k(?P<kb>\d+)_(?P<kw>\d+)$")


def head_variant(score: str, k: int | list[int]) -> str:
    """``sum_k10``, ``diff_k10``, or ``setdiff_k40_5`` (top 40 by Black attention minus top 5 by White)."""
    if score == "setdiff":
        kb, kw = k
        return f"setdiff_k{kb}_{kw}"
    return f"{score}_k{k}"


def parse_variant(name: str) -> dict[str, Any]:
    m = VARIANT.match(name)
    if not m:
        raise ValueError(f"not a head mask variant: {name!r}")
    if m["kb"] is not None:
        return {"score": "setdiff", "k": int(m["kb"]), "k_white": int(m["kw"])}
    return {"score": m["score"], "k": int(m["k"])}


def select_heads(white: torch.Tensor, black: torch.Tensor, variant: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen heads, ranking scores) for one variant."""
    if variant["score"] == "setdiff":
        chosen = top_k_heads(black, variant["k"]) & ~top_k_heads(white, variant["k_white"])
        return chosen, black - white
    scores = head_scores(white, black, variant["score"])
    return top_k_heads(scores, variant["k"]), scores


def race_means(df: pd.DataFrame, n_layers: int, n_heads: int, where: str) -> dict[str, torch.Tensor]:
    """Mean name-attention (layers x heads) per race over head-attention rows with an answer."""
    df = df[df["n_answer_tokens"] > 0]
    out = {}
    for race in ("white", "black"):
        sub = df[df["race"] == race]
        if sub.empty:
            raise ConfigError(where, f"no prompts with race '{race}' and a non-empty answer",
                              "check the names file and the baseline answers")
        arr = np.stack(sub["attn"].to_numpy())
        if arr.shape[1] != n_layers * n_heads:
            raise ConfigError(where, f"attention cache has {arr.shape[1]} heads, model {n_layers * n_heads}",
                              "delete results/head_attention and rerun")
        out[race] = torch.from_numpy(arr.mean(0).reshape(n_layers, n_heads))
    return out


def group_attention(paths: Iterable[str | Path], n_layers: int, n_heads: int,
                    names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Mean name-attention (layers x heads) per race over the prompts of all files (of ``names`` only if given)."""
    from workflow_scripts.files import read_parquet

    frames = [read_parquet(p, ["name", "race", "attn", "n_answer_tokens"]) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    if names is not None:
        df = df[df["name"].isin(set(names))]
    return race_means(df, n_layers, n_heads, ", ".join(map(str, paths)))


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json

    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import write_mask
    from workflow_scripts.modeling import IDENTITY_FILE

    log = setup_logging(smk.log[0], "prunebias.score_heads")
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
    att = group_attention(smk.input.attention, identity["n_layers"], identity["n_heads"], smk.params.learn_names)
    for path in smk.output:
        v = parse_variant(Path(path).parent.name)
        heads, scores = select_heads(att["white"], att["black"], v)
        meta = {"model": identity, "method": {"name": "heads", **v}, "source": smk.wildcards.source,
                "sources": list(smk.params.contexts), "combine": smk.params.combine,
                "learn_names": smk.params.learn_names, "white_mean": att["white"].tolist(), "black_mean": att["black"].tolist()}
        write_mask(path, "heads", meta, {"heads": heads.numpy(), "scores": scores.numpy()})
        chosen = [(int(i) // identity["n_heads"], int(i) % identity["n_heads"]) for i in heads.flatten().nonzero()]
        log.info("%s %s: heads (layer, head) %s", smk.wildcards.source, Path(path).parent.name, chosen)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
