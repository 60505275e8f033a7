"""Batched, seeded sampling with a KV cache.

Why our own loop instead of ``model.generate``: every answer gets its own seed (so an
answer does not depend on which batch it landed in, and a rerun reproduces it), the
loop stops as soon as every row has finished its number, and only the last position's
logits are computed. Sampling uses the Gumbel-max trick with per-row generators:
argmax(logits / T + Gumbel noise) is an exact draw from softmax(logits / T). The noise is
made where the logits are (a generator per row on that device) and only the chosen token
ids are copied to the host: no (batch x vocabulary) copy per step. On the CPU the answers
are those of the earlier row-by-row sampler (a test keeps that sampler as its reference);
on a GPU the device's generator gives other, equally valid draws for the same seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from prunebias.workflow.logs import progress


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.6
    max_new_tokens: int = 12
    batch_size: int = 32
    stop_after_number: bool = True


def _gumbel_rows(gens: list[torch.Generator | None], vocab: int, device: str | torch.device = "cpu"
                 ) -> torch.Tensor:
    """Gumbel noise, one row per generator (zeros where None: finished rows), made on
    ``device`` where the logits are: each row's uniforms come from its own generator (on
    that device), so a row's noise depends on its seed only. Each row is written in place
    (-log(-log(u)), no per-row temporaries and no stacking copy)."""
    noise = torch.zeros((len(gens), vocab), device=device)
    for i, g in enumerate(gens):
        if g is not None:
            row = noise[i]
            torch.rand(vocab, generator=g, device=device, out=row)
            row.clamp_(1e-20, 1.0 - 1e-7).log_().neg_().log_().neg_()
    return noise


@torch.inference_mode()
def sample_batch(model: Any, tok: Any, texts: Sequence[str], seeds: Sequence[int], settings: Sampling,
                 eos_ids: set[int], is_finished: Callable[[str], bool] | None = None) -> list[tuple[str, int]]:
    """Continue each text; returns (decoded answer, number of generated tokens) per row."""
    device = next(model.parameters()).device
    # Identical texts (the samples of one name) share one prefill: the KV cache of each
    # distinct text is computed once and then copied to its rows.
    uniq = list(dict.fromkeys(texts))
    where = {t: i for i, t in enumerate(uniq)}
    rows = torch.tensor([where[t] for t in texts], device=device)
    enc = tok(uniq, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc.input_ids.to(device), enc.attention_mask.to(device)
    pos = (mask.long().cumsum(-1) - 1).clamp_(min=0)
    greedy = settings.temperature <= 0
    gens: list[torch.Generator | None] = [
        None if greedy else torch.Generator(device=device).manual_seed(int(s) % (2**63)) for s in seeds]
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    n = len(texts)
    if len(uniq) < n:
        out.cache.reorder_cache(rows)
        out.logits = out.logits.index_select(0, rows)
        mask, pos = mask.index_select(0, rows), pos.index_select(0, rows)
    done = torch.zeros(n, dtype=torch.bool)
    generated: list[list[int]] = [[] for _ in range(n)]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for _ in range(settings.max_new_tokens):
        logits = out.logits[:, -1, :].float()  # stays on the device: only the chosen ids are copied
        if greedy:
            nxt = logits.argmax(-1).cpu()
        else:
            active = [None if d else g for g, d in zip(gens, done.tolist())]
            noise = _gumbel_rows(active, logits.shape[-1], logits.device)
            nxt = (logits / settings.temperature + noise).argmax(-1).cpu()
        nxt[done] = pad
        for i in (~done).nonzero().flatten().tolist():
            t = int(nxt[i])
            if t in eos_ids:
                done[i] = True
                continue
            generated[i].append(t)
            if is_finished is not None and is_finished(tok.decode(generated[i], skip_special_tokens=True)):
                done[i] = True
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
        pos = pos[:, -1:] + 1
        out = model(input_ids=nxt[:, None].to(device), attention_mask=mask, position_ids=pos,
                    cache=out.cache, use_cache=True, logits_to_keep=1)
    return [(tok.decode(g, skip_special_tokens=True), len(g)) for g in generated]


def sample_all(model: Any, tok: Any, texts: Sequence[str], seeds: Sequence[int], settings: Sampling,
               eos_ids: set[int], is_finished: Callable[[str], bool] | None = None,
               desc: str = "generating") -> list[tuple[str, int]]:
    """Sample every text in batches of ``settings.batch_size``, with a progress bar.

    Rows are processed in order of token length (identical texts adjacent, so a name's
    samples share one prefill) and batches carry little padding; results come back in
    input order.
    """
    lengths = [len(ids) for ids in tok(list(texts), add_special_tokens=False).input_ids]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], texts[i], i))
    results: list[tuple[str, int] | None] = [None] * len(texts)
    bs = max(1, int(settings.batch_size))
    with progress(total=len(texts), desc=desc, unit="answer") as bar:
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            got = sample_batch(model, tok, [texts[i] for i in idx], [seeds[i] for i in idx], settings, eos_ids,
                               is_finished)
            if len(got) != len(idx):  # zip would pair answers with the wrong prompts
                raise RuntimeError(f"sampler returned {len(got)} answers for a batch of {len(idx)} prompts")
            for i, r in zip(idx, got):
                results[i] = r
            bar.update(len(idx))
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:  # never drop rows: the answers would shift against their prompts
        raise RuntimeError(f"no answer for {len(missing)} of {len(texts)} prompts (first rows {missing[:5]})")
    return results  # type: ignore[return-value]
