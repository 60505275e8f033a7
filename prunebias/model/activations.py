"""Activation and head-attention caches: one forward pass over prompt + baseline answer.

``results/activations/{model}/{context}.parquet`` — one row per (prompt, layer, site):

| column   | type          | meaning |
|----------|---------------|---------|
| row      | int64         | row of the prompt in ``results/prompts/{context}.parquet`` |
| context, race, gender, name | string | copied from the prompt |
| sample   | int64         | sample index of the prompt |
| layer    | int16         | decoder layer |
| site     | string        | ``attn_in`` / ``attn_z`` / ``mlp_in`` / ``mlp_post`` (see ``architecture``) |
| n_tokens | int32         | tokens summed over (all non-pad tokens of the chat text: prompt + answer) |
| sumsq    | list<float32> | sum over those tokens of x_j^2, one value per input channel j |

Summing ``sumsq`` over any subset of prompts and taking the square root gives the
Wanda norms ||X_j||_2 of that subset, so masks for a name split or a pool of contexts
need no new model run.

``results/head_attention/{model}/{context}.parquet`` — one row per prompt:

| column          | type          | meaning |
|-----------------|---------------|---------|
| row, context, race, gender, name, sample | | as in the activation table |
| n_name_tokens   | int32         | tokens that overlap the name |
| n_answer_tokens | int32         | tokens that overlap the answer (the response after the answer prefix) |
| n_query_tokens  | int32         | query positions averaged over in ``attn`` (see below) |
| attn            | list<float32> | n_layers x n_heads, layer-major: per query head, the attention mass on the name's tokens, summed over the name's tokens and averaged over the query positions |

``results/residuals/{model}/{context}.parquet`` — the residual stream for race directions
(``prunebias.methods.directions``), one row per (batch, name, position):

| column     | type          | meaning |
|------------|---------------|---------|
| context, race, gender, name | string | as in the activation table |
| position   | string        | ``answer``: the token whose next-token prediction is the first answer token (the last prompt token; with an empty response the last token); ``name``: the mean over the name's tokens |
| n_prompts  | int32         | prompts of this name summed over |
| n_layers   | int16         | decoder layers |
| resid_sum  | list<float32> | n_layers x d_model, layer-major: the sum over those prompts of each decoder layer's output (the residual stream after it) at the position |

Summing ``resid_sum`` and ``n_prompts`` over a name's rows gives its mean residual: the
name is the unit, so a direction averages names, not prompts.

The query positions (``query_positions`` of ``cache_batches``, the rule's
``params.head_queries``) are by default ``generating``: the positions whose attention
produced the answer tokens, i.e. t - 1 for every answer token t — from the last token
before the response (the end of the answer prefix, "... is $") through the answer's
second-to-last token; a token that straddles the prefix/response boundary counts as an
answer token, so its generating position is the token before it. ``answer`` (the old
behaviour, kept for comparison) averages over the answer tokens themselves. Both
``n_query_tokens`` and ``n_answer_tokens`` equal the number of answer tokens; an empty
response has no query positions (``n_query_tokens`` 0, ``attn`` all 0, rows that
``heads.race_means`` drops). The positions come from the attention and answer
masks, so left and right padding give the same values. The name is located by
character offsets (any fast tokenizer), never by token ids.

Memory is bounded by one batch: hooks reduce each batch to per-channel sums in float32
at once, and each batch is written as its own Parquet row group.
"""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from prunebias.model.architecture import SITES, check_architecture, decoder_layers
from prunebias.errors import ConfigError
from prunebias.files import read_parquet
from prunebias.model.hooks import HookPoint, hooked
from prunebias.model.modeling import chat_text
from prunebias.audit.names import name_occurrences

META_COLUMNS = ["row", "context", "race", "gender", "name", "sample"]
ACT_SCHEMA = pa.schema([("row", pa.int64()), ("context", pa.string()), ("race", pa.string()),
                        ("gender", pa.string()), ("name", pa.string()), ("sample", pa.int64()),
                        ("layer", pa.int16()), ("site", pa.string()), ("n_tokens", pa.int32()),
                        ("sumsq", pa.list_(pa.float32()))])
HEAD_SCHEMA = pa.schema([("row", pa.int64()), ("context", pa.string()), ("race", pa.string()),
                         ("gender", pa.string()), ("name", pa.string()), ("sample", pa.int64()),
                         ("n_name_tokens", pa.int32()), ("n_answer_tokens", pa.int32()),
                         ("n_query_tokens", pa.int32()), ("attn", pa.list_(pa.float32()))])
RESID_SCHEMA = pa.schema([("context", pa.string()), ("race", pa.string()), ("gender", pa.string()),
                          ("name", pa.string()), ("position", pa.string()), ("n_prompts", pa.int32()),
                          ("n_layers", pa.int16()), ("resid_sum", pa.list_(pa.float32()))])
QUERY_POSITIONS = ("generating", "answer")
RESID_POSITIONS = ("answer", "name")


def char_spans(text: str, prompt: str, name: str, response: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Character spans of the name (inside the user prompt) and of the answer in ``text``."""
    p0 = text.find(prompt)
    n0 = (p0 + prompt.find(name)) if p0 >= 0 and name in prompt else text.find(name)
    if n0 < 0:
        raise ValueError(f"name {name!r} not found in model input")
    r0 = text.rfind(response) if response else -1
    if r0 < n0 + len(name):
        r0 = len(text)
    return (n0, n0 + len(name)), (r0, r0 + len(response) if r0 < len(text) else len(text))


def name_spans(text: str, prompt: str, name: str) -> list[tuple[int, int]]:
    """Character spans in ``text`` of every occurrence of the subject's name inside the user
    prompt (a prompt table may name the subject several times; other people's names in it
    are not the subject's)."""
    p0 = text.find(prompt)
    if p0 < 0:
        return [(s, e) for s, e in name_occurrences(text, name)[:1]]
    return [(p0 + s, p0 + e) for s, e in name_occurrences(prompt, name)]


def token_masks(offsets: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """Bool (B, T): tokens whose character range overlaps the row's span."""
    s, e = offsets[..., 0], offsets[..., 1]
    lo = torch.tensor([a for a, _ in spans])[:, None]
    hi = torch.tensor([b for _, b in spans])[:, None]
    return (e > s) & (s < hi) & (e > lo)


def multi_span_masks(offsets: torch.Tensor, spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """Bool (B, T): tokens overlapping any of the row's spans."""
    out = torch.zeros(offsets.shape[:2], dtype=torch.bool)
    for k in range(max((len(s) for s in spans), default=0)):
        out |= token_masks(offsets, [row[k] if k < len(row) else (0, 0) for row in spans])
    return out


def query_mask(answer_mask: torch.Tensor, token_mask: torch.Tensor, query_positions: str) -> torch.Tensor:
    """Bool (B, T): the query positions whose attention to the name is recorded.

    ``answer``: the answer tokens. ``generating``: position t - 1 for every answer token t
    (the positions whose next-token prediction is an answer token). Pads are on one side,
    so the position before a non-first real token is real, whichever side the tokenizer
    pads; the ``& token_mask`` only guards an answer that starts at the first real token.
    """
    if query_positions == "answer":
        return answer_mask.clone()
    if query_positions != "generating":
        raise ValueError(f"query_positions must be one of {QUERY_POSITIONS}, not {query_positions!r}")
    q = torch.zeros_like(answer_mask)
    q[:, :-1] = answer_mask[:, 1:]
    return q & token_mask


class _Recorder:
    """Forward hooks that reduce each batch to per-channel sums and name-attention mass."""

    def __init__(self, model: Any, with_attention: bool, with_sites: bool = True,
                 with_residuals: bool = False) -> None:
        self.points: list[HookPoint] = []  # registered by the caller (``hooked``)
        self.sums: dict[tuple[int, str], torch.Tensor] = {}
        self.attn: dict[int, torch.Tensor] = {}
        self.resid: dict[int, dict[str, torch.Tensor]] = {}  # layer -> position -> (B, d)
        self.token_mask: torch.Tensor | None = None
        self.name_mask: torch.Tensor | None = None
        self.answer_mask: torch.Tensor | None = None
        self.query_mask: torch.Tensor | None = None
        self.answer_pos: torch.Tensor | None = None  # (B,) the position generating the first answer token
        for i, layer in enumerate(decoder_layers(model)):
            for site, (block, mod) in SITES.items() if with_sites else ():
                lin = getattr(getattr(layer, block), mod)
                self.points.append((lin, "input", self._site_hook(i, site)))
            if with_attention:
                self.points.append((layer.self_attn, "output", self._attn_hook(i)))
            if with_residuals:
                self.points.append((layer, "output", self._resid_hook(i)))

    def _resid_hook(self, layer: int):
        def hook(_mod, _args, output):
            h = (output[0] if isinstance(output, tuple) else output).float()  # (B, T, d)
            rows = torch.arange(h.shape[0], device=h.device)
            name = self.name_mask.to(h.device, h.dtype)[..., None]
            self.resid[layer] = {"answer": h[rows, self.answer_pos.to(h.device)].cpu(),
                                 "name": ((h * name).sum(1) / name.sum(1).clamp(min=1)).cpu()}
        return hook

    def _site_hook(self, layer: int, site: str):
        def hook(_mod, args):
            x = args[0].float()
            m = self.token_mask.to(x.device, x.dtype)[..., None]
            self.sums[(layer, site)] = (x.square() * m).sum(dim=1).cpu()
        return hook

    def _attn_hook(self, layer: int):
        def hook(_mod, _args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError("attention weights not returned: load the model with attn_implementation='eager'")
            w = weights.float()  # (B, H, T, T)
            name = self.name_mask.to(w.device, w.dtype)[:, None, None, :]
            mass = (w * name).sum(-1)  # (B, H, T): attention from each query token to the name
            q = self.query_mask.to(w.device)[:, None, :]
            n_q = q.sum(-1).clamp(min=1).to(w.dtype)
            self.attn[layer] = (mass.masked_fill(~q, 0.0).sum(-1) / n_q).cpu()
        return hook


def answer_positions(answer_mask: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """(B,) the position whose next-token prediction is the row's first answer token; a row
    without answer tokens (an empty response) gets its last real token, which would have
    generated one. Pads on either side."""
    gen = query_mask(answer_mask, token_mask, "generating")
    idx = torch.arange(token_mask.shape[1])
    last = (token_mask.long() * idx).max(1).values
    first = torch.where(gen, idx, token_mask.shape[1]).min(1).values
    return torch.where(gen.any(1), first, last)


@torch.inference_mode()
def cache_batches(model: Any, tok: Any, rows: pd.DataFrame, batch_size: int, with_attention: bool = True,
                  with_sites: bool = True, query_positions: str = "generating", with_residuals: bool = False,
                  ) -> Iterator[tuple[pa.Table | None, pa.Table | None, pa.Table | None]]:
    """Yield, per batch of prompts, its activation rows, head-attention rows and residual
    rows (None for each table not asked for).

    ``rows`` needs prompt, answer_prefix, response, name and the META_COLUMNS.
    ``query_positions`` (``generating`` / ``answer``) picks the query positions of the
    head-attention rows (see the module docstring).
    """
    if query_positions not in QUERY_POSITIONS:
        raise ValueError(f"query_positions must be one of {QUERY_POSITIONS}, not {query_positions!r}")
    geo = check_architecture(model)
    device = next(model.parameters()).device
    rec = _Recorder(model, with_attention, with_sites, with_residuals)
    with hooked(rec.points):  # removed when the caller stops iterating, or on an error
        for start in range(0, len(rows), batch_size):
            b = rows.iloc[start:start + batch_size]
            responses = [r if isinstance(r, str) else "" for r in b["response"]]
            texts = [chat_text(tok, p, a, r) for p, a, r in zip(b["prompt"], b["answer_prefix"], responses)]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False, return_offsets_mapping=True)
            spans = [char_spans(t, p, n, r) for t, p, n, r in zip(texts, b["prompt"], b["name"], responses)]
            rec.token_mask = enc.attention_mask.bool()
            every = [name_spans(t, p, n) for t, p, n in zip(texts, b["prompt"], b["name"])]  # each occurrence
            rec.name_mask = multi_span_masks(enc.offset_mapping, every) & rec.token_mask
            rec.answer_mask = token_masks(enc.offset_mapping, [s[1] for s in spans]) & rec.token_mask
            rec.query_mask = query_mask(rec.answer_mask, rec.token_mask, query_positions)
            rec.answer_pos = answer_positions(rec.answer_mask, rec.token_mask)
            model(input_ids=enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device),
                  use_cache=False, logits_to_keep=1)
            yield (_act_table(b, rec, geo.n_layers) if with_sites else None,
                   _head_table(b, rec, geo.n_layers) if with_attention else None,
                   _resid_table(b, rec, geo.n_layers) if with_residuals else None)


def _meta(b: pd.DataFrame) -> dict[str, list]:
    return {c: list(b[c]) for c in META_COLUMNS}


def _act_table(b: pd.DataFrame, rec: _Recorder, n_layers: int) -> pa.Table:
    meta = _meta(b)
    n_tok = rec.token_mask.sum(-1).tolist()
    cols: dict[str, list] = {k: [] for k in ACT_SCHEMA.names}
    for i in range(len(b)):
        for layer in range(n_layers):
            for site in SITES:
                for c in META_COLUMNS:
                    cols[c].append(meta[c][i])
                cols["layer"].append(layer)
                cols["site"].append(site)
                cols["n_tokens"].append(n_tok[i])
                cols["sumsq"].append(rec.sums[(layer, site)][i].numpy())
    return pa.table(cols, schema=ACT_SCHEMA)


def _head_table(b: pd.DataFrame, rec: _Recorder, n_layers: int) -> pa.Table:
    meta = _meta(b)
    attn = torch.stack([rec.attn[layer] for layer in range(n_layers)], dim=1)  # (B, L, H)
    cols = {**meta, "n_name_tokens": rec.name_mask.sum(-1).tolist(),
            "n_answer_tokens": rec.answer_mask.sum(-1).tolist(),
            "n_query_tokens": rec.query_mask.sum(-1).tolist(),
            "attn": [a.flatten().numpy().astype(np.float32) for a in attn]}
    return pa.table(cols, schema=HEAD_SCHEMA)


def _resid_table(b: pd.DataFrame, rec: _Recorder, n_layers: int) -> pa.Table:
    """Per (name, position): the sum of the batch's prompts' residuals (name order kept)."""
    cols: dict[str, list] = {k: [] for k in RESID_SCHEMA.names}
    names = b["name"].to_numpy()
    for name in dict.fromkeys(names):
        rows = torch.from_numpy(np.flatnonzero(names == name))
        first = b.iloc[int(rows[0])]
        for pos in RESID_POSITIONS:
            total = torch.stack([rec.resid[layer][pos][rows].sum(0) for layer in range(n_layers)])  # (L, d)
            for c in ("context", "race", "gender", "name"):
                cols[c].append(first[c])
            cols["position"].append(pos)
            cols["n_prompts"].append(len(rows))
            cols["n_layers"].append(n_layers)
            cols["resid_sum"].append(total.flatten().numpy().astype(np.float32))
    return pa.table(cols, schema=RESID_SCHEMA)


# Reading the activation cache

def add_sumsq(out: dict[str, dict[tuple[int, str], torch.Tensor]], df: Any) -> None:
    """Add the ``sumsq`` of activation-cache rows (a data frame) to per-race running sums."""
    for (race, layer, site), g in df.groupby(["race", "layer", "site"], sort=False):
        s = torch.from_numpy(np.stack(g["sumsq"].to_numpy()).astype(np.float64).sum(0))
        acc = out.setdefault(race, {})
        key = (int(layer), site)
        acc[key] = acc[key] + s if key in acc else s


def group_sumsq(paths: Iterable[str | Path], keep: Callable[[Any], Any] | None = None
                ) -> dict[str, dict[tuple[int, str], torch.Tensor]]:
    """Sum ``sumsq`` per race and (layer, site) over cached prompts, streaming row groups.

    ``keep(batch_df) -> bool array`` selects prompts (e.g. a name split); default all.
    Memory stays at one row group plus the running sums.
    """
    out: dict[str, dict[tuple[int, str], torch.Tensor]] = {"white": {}, "black": {}}
    for path in paths:
        try:
            pf = pq.ParquetFile(path)
            batches = pf.iter_batches(columns=["row", "race", "name", "sample", "layer", "site", "sumsq"])
            for batch in batches:
                df = batch.to_pandas()
                if keep is not None:
                    df = df[np.asarray(keep(df), dtype=bool)]
                add_sumsq(out, df)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(str(path), f"not a readable activation cache ({exc.__class__.__name__}: {exc})",
                              "delete it and rerun snakemake so cache_activations runs again") from exc
    for race in ("white", "black"):
        if not out.get(race):
            raise ConfigError(", ".join(map(str, paths)), f"no cached prompts with race '{race}'",
                              "check the names file and the prompt subset")
    return out


def names_filter(names: list[str] | None) -> Callable[[Any], Any] | None:
    """A ``keep`` for ``group_sumsq`` that keeps only the prompts of ``names`` (None: all)."""
    if names is None:
        return None
    allowed = set(names)
    return lambda df: df["name"].isin(allowed).to_numpy()


def read_cache(path: str | Path, columns: list[str] | None = None, names: list[str] | None = None) -> pd.DataFrame:
    """An activation or head-attention cache as a data frame (optionally some columns, some names).

    Activation rows hold ``sumsq`` per (prompt, layer, site); summing them over any prompts
    and taking the square root gives that subset's Wanda norms ``||X_j||_2``.
    """
    df = read_parquet(path, ["name", *(columns or [])])
    if names is not None:
        df = df[df["name"].isin(set(names))].reset_index(drop=True)
    return df if columns is None else df[list(columns)]


def name_residuals(paths: Iterable[str | Path], names: list[str] | None = None) -> pd.DataFrame:
    """Each name's mean residual per position over the residual caches ``paths`` (several
    contexts: a name's prompts in all of them): columns name, race, position, n_prompts,
    ``mean`` (an n_layers x d_model array). ``names``: only these names (None: all)."""
    frames = []
    for path in paths:
        try:
            df = read_parquet(path, ["race", "name", "position", "n_prompts", "n_layers", "resid_sum"])
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(str(path), f"not a readable residual cache ({exc.__class__.__name__}: {exc})",
                              "delete it and rerun snakemake so cache_activations runs again") from exc
        frames.append(df if names is None else df[df["name"].isin(set(names))])
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise ConfigError(", ".join(map(str, paths)), "no cached residuals for these names",
                          "check the names file and the prompt subset")
    out = []
    for (name, race, pos), g in df.groupby(["name", "race", "position"], sort=True):
        total = np.stack(g["resid_sum"].to_numpy()).astype(np.float64).sum(0)
        n = int(g["n_prompts"].sum())
        out.append({"name": name, "race": race, "position": pos, "n_prompts": n,
                    "mean": (total / n).reshape(int(g["n_layers"].iloc[0]), -1)})
    return pd.DataFrame(out)
