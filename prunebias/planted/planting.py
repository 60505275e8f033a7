"""Positive control: plant a known racial bias into a few MLP weights of one decoder layer.

Why: a localization method that finds nothing on a real model may be blind, or the model
may hold no bias worth finding. A model with a planted, documented bias of known
location tells the two apart: the workflow must find the planted weights, and pruning
them must remove the bias.

How (SwiGLU MLP of layer ``L``, ``n`` randomly chosen neurons, all edits recorded):

- read direction ``p`` (gate_proj rows): the race direction of the MLP input (post-RMSNorm)
  at the answer positions, i.e. the last token of the answer prefix and the first answer
  tokens of the model's own answers: Black mean minus White mean averaged over (context,
  position) groups, made orthogonal to every group's mean (Llama MLPs have no biases, so
  this projection is the centering), ridge-whitened so that it ignores what varies with
  the answer's tokens and stays ~0 on prompt tokens (``race_reader``). Scaled so ``p.x``
  is ~+1 for Black and ~-1 for White names;
- up_proj rows: ``u = m / |m|^2`` (``m`` the mean MLP input at the answer positions, so
  ``u.x`` ~1: a stand-in for the missing bias) or the answer gate ``w`` (``w.x`` ~1 at the
  answer positions for both races, ~0 at every prompt token and at the answer's tail past
  them: ``answer_gate``), whichever leaves the neurons quieter for White names over all
  calibration tokens (``stats["up_row"]``). The gate reads ``sharpness * (p.x - threshold
  * u.x)``, and the neuron's output ``silu(gate) * up.x`` is a soft ReLU of ``p.x`` (not
  the quadratic ``silu(g) * g`` of gate = up). Why the choice: the Wanda norms sum every
  token, so the set difference sees the plant only if White names leave it quiet
  everywhere. On SmolLM2 the linear reader alone is not quiet on the tail (the answer's
  later digits drove it as hard for White names as for Black ones): with ``u`` the planted
  neurons' White norm was half their Black norm and the Wanda masks held 17-61% of the
  planted mass; ``w`` brings the White norm to 10-20% of the Black one. On the tests' tiny
  model, where race is coded on the prompt tokens too, ``u`` is the quieter one;
- which answer positions: the last prompt token and the first ``max_answer_tokens``
  answer tokens (config ``answer_tokens``; every later token is the silent tail). The
  workflow's default is 1, not 4: on SmolLM2 the race reader is clean on the last prompt
  token and the first answer token, but from the second answer token on it reads what the
  answer says ("1.1 million") as much as the name, so with 4 a few White names' later
  digits opened the gate (in purchase-house, 5 of 10 seeds' baselines left a Black/White
  sum of squares of 4.5-10.5 over all tokens, too little for a set difference to keep the
  planted neurons); with 1 it is 150-1700 in the same seeds. Writing at fewer positions
  moves the answers less (seed 20250212: a log_smd of -0.51 against -0.77), so the default
  strength is 0.15 (-0.81, with Black names' anomaly rates unchanged);
- down_proj columns: ``sign * strength * |h| * v / (n * silu(sharpness * (1 - threshold)))``,
  so a name at ``p.x = 1`` adds ``strength`` times the typical residual norm ``|h|`` along
  ``v``. ``v`` is the layer-``L`` residual direction that tracks the log of the expected
  answer, estimated from prompts with a known magnitude (``anchor_prompts``: the
  purchase items' typical prices in ``data/scenarios.yaml``). On SmolLM2-135M adding it
  at every answer position scales the answers' magnitude (adding it only at the last
  prompt token barely moves them), which is why the neuron reads answer positions too.

``sign=+1`` makes Black names' answers larger (SMD White - Black < 0), ``-1`` smaller
(on SmolLM2 "smaller" pushes hiring answers below the plausible range: anomalies).
Only the recorded rows/columns change; ``PlantedBias.recall`` scores a mask against them
(``prunebias.planted.planted_recall``); the planted model on disk is ``prunebias.planted.planted_model``.
Expected by design: a Wanda set-difference mask can find the down_proj columns (their
input, the neuron's output, differs by race) but hardly the gate/up rows (their input,
the MLP input, has nearly the same per-channel norms for both races).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from prunebias.model.activations import char_spans, token_masks
from prunebias.model.architecture import decoder_layers, linear
from prunebias.audit.contexts import resolve_context
from prunebias.model.hooks import hooked
from prunebias.model.modeling import chat_text
from prunebias.audit.prompts import build_prompts

CALIBRATION_COLUMNS = ["prompt", "answer_prefix", "name", "race", "context"]


@dataclass
class Inputs:
    """Per-position tensors collected at one layer (one row per prompt x position).

    ``x``: MLP input (input of gate_proj/up_proj); ``h``: the layer's output residual;
    ``row``: index of the prompt in the frame given; ``pos``: 0 = last token before the
    answer, k = k-th answer token.
    """

    x: np.ndarray
    h: np.ndarray
    row: np.ndarray
    pos: np.ndarray


@dataclass
class PlantedBias:
    """What was planted, where, and how well the read direction separates the races."""

    layer: int
    neurons: list[int]
    seed: int
    strength: float
    sharpness: float
    sign: int
    threshold: float = 0.0
    scope: str = "general"                                      # general | context
    contexts: list[str] = field(default_factory=list)           # the contexts it acts in (context scope)
    stats: dict[str, Any] = field(default_factory=dict)
    read: np.ndarray | None = field(default=None, repr=False)   # p (z = p.x), hidden
    cue: np.ndarray | None = field(default=None, repr=False)    # c (c.x ~ 1 in its contexts, ~0 elsewhere)
    unit: np.ndarray | None = field(default=None, repr=False)   # u (u.x ~ 1), hidden
    up: np.ndarray | None = field(default=None, repr=False)     # the up row (u, or the answer gate w), hidden
    write: np.ndarray | None = field(default=None, repr=False)  # unit write direction v, hidden

    @property
    def edited(self) -> dict[str, dict[str, list[int]]]:
        """Mask keys (as in ``results/masks/{model}/neurons``) -> the rows or columns overwritten."""
        pre = f"layers.{self.layer}"
        return {f"{pre}.gate_proj": {"rows": list(self.neurons)}, f"{pre}.up_proj": {"rows": list(self.neurons)},
                f"{pre}.down_proj": {"cols": list(self.neurons)}}

    def weight_masks(self, shapes: Mapping[str, tuple[int, int]]) -> dict[str, np.ndarray]:
        """Bool arrays (out x in) of the planted entries, for the edited keys in ``shapes``."""
        out = {}
        for key, where in self.edited.items():
            if key not in shapes:
                continue
            m = np.zeros(shapes[key], dtype=bool)
            if "rows" in where:
                m[where["rows"], :] = True
            else:
                m[:, where["cols"]] = True
            out[key] = m
        return out

    def recall(self, mask: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray] | Any = None
               ) -> dict[str, float]:
        """Share of the planted weights that ``mask`` (key -> bool array) selects, per module and overall.

        Also ``{key}.units``: share of the planted rows/columns with at least half of their
        entries selected (a method that removes most of a neuron removes the neuron); and,
        given the planted weights (``planted_weights_of``, or the planted model itself),
        ``{key}.mass``: the selected share of the planted entries' squared magnitude (the
        large entries carry the write).
        """
        planted = self.weight_masks({k: mask[k].shape for k in self.edited})
        out: dict[str, float] = {}
        hit = tot = 0
        for key, pm in planted.items():
            sel = mask[key] & pm
            out[key] = float(sel.sum() / pm.sum())
            axis = 1 if "rows" in self.edited[key] else 0
            idx = self.neurons
            frac = sel.sum(axis=axis)[idx] / pm.sum(axis=axis)[idx]
            out[f"{key}.units"] = float((frac >= 0.5).mean())
            if weights is not None:
                _, layer, module = key.split(".")
                w = (weights[key] if isinstance(weights, Mapping)
                     else linear(weights, int(layer), module).weight.detach().float().cpu().numpy())
                w2 = np.asarray(w, dtype=np.float64) ** 2
                out[f"{key}.mass"] = float(w2[sel].sum() / w2[pm].sum())
            hit += int(sel.sum())
            tot += int(pm.sum())
        out["all"] = hit / tot
        return out

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("read", "unit", "write", "cue", "up")}
        d["edited"] = self.edited
        d["format"] = "prunebias-planted/1"
        return d


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2."""
    y = np.asarray(labels, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    r = rankdata(np.asarray(scores, dtype=float))
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def race_reader(x: np.ndarray, black: np.ndarray, group: np.ndarray, ridge: float | None = None,
                silent: np.ndarray | None = None, silent_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Read direction ``p`` and unit direction ``u`` from MLP inputs at the answer positions.

    ``d`` = mean over groups of (Black mean - White mean); ``p`` = ``d`` projected off the
    span of all group means (so the neuron is silent for each group's average input). With
    ``ridge``, ``p`` is whitened first: ``p ~ (S + ridge * mean variance * I)^-1 d`` where
    ``S`` is the within-(group, race) covariance plus ``silent_weight`` times the second
    moment of the ``silent`` inputs (e.g. every prompt token): directions that vary with
    the answer's tokens, or that are far from 0 on prompt tokens, are read less. Silence
    on prompt tokens matters twice: the neuron writes only where it should, and the Wanda
    norms (summed over all tokens) then differ by race. ``p`` is scaled so the average race
    gap of ``p.x`` within a group is 2 (Black ~ +1, White ~ -1); ``u = m / |m|^2`` with
    ``m`` the mean input, so ``u.x`` is ~1.
    """
    x = np.asarray(x, dtype=np.float64)
    black = np.asarray(black, dtype=bool)
    group = np.asarray(group)
    groups = list(dict.fromkeys(group.tolist()))
    means, diffs, resid = [], [], []
    for g in groups:
        sel = group == g
        means.append(x[sel].mean(0))
        b, w = sel & black, sel & ~black
        if b.any() and w.any():
            diffs.append(x[b].mean(0) - x[w].mean(0))
            resid.extend([x[b] - x[b].mean(0), x[w] - x[w].mean(0)])
    if not diffs:
        raise ValueError("no group holds both races: cannot estimate a race direction")
    if len(groups) >= x.shape[1]:
        raise ValueError(f"{len(groups)} groups for {x.shape[1]} dimensions: too many to project out")
    d = np.mean(diffs, axis=0)
    q, _ = np.linalg.qr(np.stack(means, axis=1))

    def off(v: np.ndarray) -> np.ndarray:
        return v - q @ (q.T @ v)

    p = off(d)
    if ridge is not None:
        r = np.concatenate(resid)
        s = r.T @ r / len(r)
        if silent is not None and len(silent):
            n = np.asarray(silent, dtype=np.float64)
            s += silent_weight * (n.T @ n) / len(n)
        s += ridge * np.trace(s) / len(s) * np.eye(len(s))
        p = off(np.linalg.solve(s, p))
    gaps = [(x[(group == g) & black] @ p).mean() - (x[(group == g) & ~black] @ p).mean()
            for g in groups if ((group == g) & black).any() and ((group == g) & ~black).any()]
    gap = float(np.mean(gaps)) / 2.0
    if not gap > 0:
        raise ValueError("the race direction does not separate the calibration groups")
    m = x.mean(0)
    return p / gap, m / float(m @ m)


def value_direction(h: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit residual direction along which ``target`` grows (covariance direction) and the
    correlation of the projection with the target (in-sample)."""
    h = np.asarray(h, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    hc, yc = h - h.mean(0), y - y.mean()
    v = yc @ hc
    norm = float(np.linalg.norm(v))
    if not norm > 0:
        raise ValueError("target is constant or inputs are identical: no value direction")
    v /= norm
    return v, float(np.corrcoef(hc @ v, yc)[0, 1])


def planted_weights(read: np.ndarray, unit: np.ndarray, write: np.ndarray, resid_norm: float, n_neurons: int,
                    strength: float, sharpness: float, sign: int, threshold: float = 0.0,
                    cue: np.ndarray | None = None, cue_weight: float = 4.0, where: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gate row, up row, down column) shared by the planted neurons (see module docstring).

    The gate reads ``sharpness * (p.x - threshold * u.x)``: with ``u.x ~ 1`` the neuron
    stays silent until ``p.x`` passes ``threshold``. With a context cue ``c`` (``c.x`` ~1 in
    the plant's contexts, ~0 elsewhere) it also reads ``cue_weight * (c.x - u.x)``: nothing
    in the plant's contexts, a penalty of ``cue_weight`` race units outside them, so only a
    Black name in the context opens it (an AND whose home behaviour is the general plant's).
    A penalty, not a threshold between 1 and 2 on ``p.x + c.x``: the race signal varies by
    about its own size between positions, which a threshold of one unit does not hold back
    (on SmolLM2, 22% of the home activation gap leaked outside; with the penalty of 4, 0.1%).
    The up row is ``where`` (``w.x`` ~1 at the answer positions, ~0 at every other token;
    default ``u``), so the neuron's output is the gate's times "this is an answer position".
    The write is scaled so that a Black name at ``p.x = 1`` writes ``strength``.
    """
    a = sharpness * (1.0 - threshold)
    silu = a / (1.0 + math.exp(-a))
    if not silu > 0:
        raise ValueError(f"threshold {threshold} must be below 1 (the Black mean of p.x)")
    unit = np.asarray(unit, dtype=np.float64)
    read = np.asarray(read, dtype=np.float64)
    if cue is not None:
        read = read + cue_weight * (np.asarray(cue, dtype=np.float64) - unit)
    gate = sharpness * (read - threshold * unit)
    up = unit if where is None else np.asarray(where, dtype=np.float64)
    down = sign * strength * resid_norm * np.asarray(write, dtype=np.float64) / (n_neurons * silu)
    return gate, up, down


def context_cue(x: np.ndarray, home: np.ndarray, group: np.ndarray, unit: np.ndarray, ridge: float | None = 0.3,
                silent: np.ndarray | None = None, silent_weight: float = 1.0) -> np.ndarray:
    """Direction ``c`` with ``c.x`` ~1 on the ``home`` inputs and ~0 on the others: the
    whitened home-minus-other difference within each group (``race_reader`` with home as
    the label), shifted by the unit direction so the others sit at 0. The context cue:
    home = the answer positions of the plant's contexts, groups = positions; the answer
    gate ``w``: home = the answer positions, others = every other token, groups = contexts."""
    c, _ = race_reader(x, home, group, ridge, silent, silent_weight)
    z = np.asarray(x, dtype=np.float64) @ c
    zin, zout = float(z[home].mean()), float(z[~home].mean())
    return (c - zout * np.asarray(unit, dtype=np.float64)) / (zin - zout)


def answer_gate(x: np.ndarray, answer: np.ndarray, black: np.ndarray, group: np.ndarray, unit: np.ndarray,
                ridge: float | None = 0.3) -> np.ndarray:
    """Up row ``w``: ``w.x`` ~1 at the answer positions and ~0 at every other token, the same
    for both races (``context_cue`` with the answer positions as home, then made orthogonal
    to the race difference of the answer positions and rescaled), so the race is read by
    the gate alone and ``strength`` keeps its meaning."""
    x = np.asarray(x, dtype=np.float64)
    w = context_cue(x, answer, group, unit, ridge, None)
    d = x[answer & black].mean(0) - x[answer & ~black].mean(0)
    w = w - (w @ d) / (d @ d) * d
    z = x @ w
    z_in, z_out = float(z[answer].mean()), float(z[~answer].mean())
    return (w - z_out * np.asarray(unit, dtype=np.float64)) / (z_in - z_out)


def choose_neurons(n_total: int, n_neurons: int, seed: int) -> list[int]:
    """``n_neurons`` distinct MLP neuron indices, sorted, drawn with ``seed``."""
    if not 0 < n_neurons <= n_total:
        raise ValueError(f"n_neurons must be in [1, {n_total}], got {n_neurons}")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_total, size=n_neurons, replace=False))


class _Stop(Exception):
    """Raised after the hooked layer: later layers are not needed."""


@torch.inference_mode()
def collect_inputs(model: Any, tok: Any, rows: pd.DataFrame, layer: int, max_answer_tokens: int = 4,
                   batch_size: int = 16, prompt_tokens: bool = False) -> Inputs:
    """MLP input and layer output at the answer positions of each row.

    ``rows`` needs prompt, answer_prefix, name and optionally response (the answer text;
    missing or empty: only the last prefix token). Positions are found by character
    offsets as in ``cache_activations``; the forward pass stops after ``layer``. With
    ``prompt_tokens`` every earlier token is returned too, with ``pos`` -1, and every later
    token (the answer's tail past ``max_answer_tokens``) with ``pos`` -2: the activation
    cache sums over all of them, so a plant meant to be silent for White names must be
    silent there too.
    """
    device = next(model.parameters()).device
    cap: dict[str, torch.Tensor] = {}

    def pre(_mod: Any, args: tuple) -> None:
        cap["x"] = args[0].detach().float()

    def post(_mod: Any, _args: tuple, output: Any) -> None:
        cap["h"] = (output[0] if isinstance(output, tuple) else output).detach().float()
        raise _Stop

    xs, hs, ridx, pidx = [], [], [], []
    responses = list(rows["response"]) if "response" in rows.columns else [""] * len(rows)
    with hooked([(linear(model, layer, "gate_proj"), "input", pre), (decoder_layers(model)[layer], "output", post)]):
        for start in range(0, len(rows), batch_size):
            b = rows.iloc[start:start + batch_size]
            resp = [r if isinstance(r, str) else "" for r in responses[start:start + batch_size]]
            texts = [chat_text(tok, p, a, r) for p, a, r in zip(b["prompt"], b["answer_prefix"], resp)]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False, return_offsets_mapping=True)
            spans = [char_spans(t, p, n, r)[1] for t, p, n, r in zip(texts, b["prompt"], b["name"], resp)]
            real = enc.attention_mask.bool()
            answer = token_masks(enc.offset_mapping, spans) & real
            before = real & (enc.offset_mapping[..., 1] <= torch.tensor([s for s, _ in spans])[:, None]) & ~answer
            try:
                model(input_ids=enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device),
                      use_cache=False, logits_to_keep=1)
            except _Stop:
                pass
            for i in range(len(b)):
                earlier = before[i].nonzero().flatten().tolist()
                pos = [earlier[-1]] + answer[i].nonzero().flatten().tolist()[:max_answer_tokens]
                kind = list(range(len(pos)))
                if prompt_tokens:
                    tail = sorted(set(real[i].nonzero().flatten().tolist()) - set(earlier) - set(pos))
                    pos, kind = earlier[:-1] + pos + tail, [-1] * (len(earlier) - 1) + kind + [-2] * len(tail)
                xs.append(cap["x"][i, pos].cpu().numpy())
                hs.append(cap["h"][i, pos].cpu().numpy())
                ridx.extend([start + i] * len(pos))
                pidx.extend(kind)
    return Inputs(np.concatenate(xs), np.concatenate(hs), np.asarray(ridx), np.asarray(pidx))


def anchor_prompts(scenarios: Mapping[str, Any], names: pd.DataFrame, scenario: str = "purchase",
                   per_race: int = 1) -> pd.DataFrame:
    """Prompts of every variation with a numeric ``anchor`` (e.g. a typical price), with
    ``target`` = log10(anchor): the data ``value_direction`` learns "how large" from.

    Uses the first ``per_race`` names of each race; the prompts are the low-level ones
    (no anchor in the text), so the model's own sense of magnitude is what varies.
    """
    sub = names.groupby("race", sort=False).head(per_race).reset_index(drop=True)
    frames = []
    for var, fields in (scenarios[scenario].get("variations") or {}).items():
        anchor = (fields or {}).get("anchor")
        if anchor is None:
            continue
        ctx = resolve_context(f"{scenario}-{var}", scenarios)
        df = build_prompts(ctx, sub, 1, 0)
        df["target"] = math.log10(float(str(anchor).replace(",", "")))
        frames.append(df)
    if len(frames) < 2:
        raise ValueError(f"scenario '{scenario}' has fewer than 2 variations with an anchor")
    return pd.concat(frames, ignore_index=True)


def _name_auc(z: np.ndarray, black: np.ndarray, names: np.ndarray) -> float:
    df = pd.DataFrame({"z": z, "black": black, "name": names}).groupby("name").agg(z=("z", "mean"), black=("black", "first"))
    return auc(df["black"].to_numpy(), df["z"].to_numpy())


def _reader_fit(x: np.ndarray, black: np.ndarray, group: np.ndarray, silent_x: np.ndarray, ridge: float | None,
                silent_weight: float) -> tuple[np.ndarray, np.ndarray]:
    return race_reader(x, black, group, ridge, silent_x if ridge is not None else None, silent_weight)


def _name_cv_auc(x: np.ndarray, black: np.ndarray, group: np.ndarray, names: np.ndarray, silent_x: np.ndarray,
                 silent_names: np.ndarray, ridge: float | None, silent_weight: float, seed: int) -> float:
    """Two-fold AUC over names never seen by the reader: does it read race or learn names?"""
    uniq = np.unique(names)
    rng = np.random.default_rng(seed)
    fold = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % 2))
    f = np.array([fold[n] for n in names])
    fs = np.array([fold[n] for n in silent_names])
    out = []
    for k in (0, 1):
        tr = f != k
        if len(set(black[tr])) < 2 or len(set(black[~tr])) < 2:
            return math.nan
        p, _ = _reader_fit(x[tr], black[tr], group[tr], silent_x[fs != k], ridge, silent_weight)
        out.append(_name_auc(x[~tr] @ p, black[~tr], names[~tr]))
    return float(np.mean(out))


def _silu(a: np.ndarray) -> np.ndarray:
    return a / (1.0 + np.exp(-a))


def _sumsq_ratio(act: np.ndarray, black: np.ndarray) -> float:
    """Black over White sum of squares of a neuron's output: what a set difference of Wanda
    norms sees of it (large: the plant is quiet for White names)."""
    return float((act[black] ** 2).sum() / max((act[~black] ** 2).sum(), 1e-30))


@torch.no_grad()
def plant_bias(model: Any, tok: Any, calibration: pd.DataFrame, layer: int, n_neurons: int, strength: float,
               seed: int, *, value_prompts: pd.DataFrame, sharpness: float = 4.0, threshold: float = 0.0,
               sign: int = 1, ridge: float | None = 0.3, silent_weight: float = 1.0, max_answer_tokens: int = 4,
               batch_size: int = 16, contexts: list[str] | None = None, cue_weight: float = 4.0) -> PlantedBias:
    """Plant the bias into ``model`` in place and return the record of what was edited.

    ``calibration``: rows with prompt, answer_prefix, name, race (white/black), context and
    optionally response (the model's own answers: the neuron then also learns the answer
    tokens' positions, where the planted write matters most). ``value_prompts``: rows with
    prompt, answer_prefix, name and ``target`` (see ``anchor_prompts``). ``strength`` is the
    write's norm for a name at ``p.x = 1`` in units of the residual norm at those positions.
    ``ridge``/``silent_weight``: see ``race_reader`` (``ridge=None``: plain mean difference,
    prompt tokens ignored); the defaults are the pilot's choice on SmolLM2-135M.

    ``contexts`` (context scope): the neurons also read a context cue (``context_cue``,
    fitted on these contexts against the other calibration contexts) and fire only for a
    Black name in one of them (``cue_weight``: the penalty outside, in race units; see
    ``planted_weights``).
    None: the general plant (race of the name, every context).
    """
    missing = [c for c in CALIBRATION_COLUMNS if c not in calibration.columns]
    if missing:
        raise ValueError(f"calibration rows lack columns {missing}")
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    n_layers = len(decoder_layers(model))
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in [0, {n_layers}), got {layer}")
    cal = calibration.reset_index(drop=True)
    got = collect_inputs(model, tok, cal, layer, max_answer_tokens, batch_size, prompt_tokens=True)
    ans = got.pos >= 0
    black_all = (cal["race"].to_numpy() == "black")[got.row]
    names_all = cal["name"].to_numpy()[got.row]
    x, black, names, pos = got.x[ans], black_all[ans], names_all[ans], got.pos[ans]
    ctx_all = cal["context"].to_numpy()[got.row]  # every calibration token's context
    ctx = ctx_all[ans]
    group = np.array([f"{c}@{k}" for c, k in zip(ctx, pos)])
    silent_x = got.x[~ans]
    read, unit = _reader_fit(x, black, group, silent_x, ridge, silent_weight)
    cue, home = None, np.isin(ctx, list(contexts or []))
    if contexts:
        if home.all() or not home.any():
            raise ValueError(f"a context plant needs calibration prompts in and outside {sorted(contexts)}")
        pos_group = np.array([str(k) for k in pos])
        cue = context_cue(x, home, pos_group, unit, ridge, silent_x if ridge is not None else None, silent_weight)
    vals = collect_inputs(model, tok, value_prompts.reset_index(drop=True), layer, 0, batch_size)
    write, value_corr = value_direction(vals.h, value_prompts["target"].to_numpy()[vals.row])
    resid_norm = float(np.linalg.norm(got.h[ans], axis=1).mean())
    # up row: u (~1 everywhere) or the answer gate w (~1 at the answer positions, ~0 at
    # every other token), whichever leaves the neurons quieter for White names over all
    # the calibration tokens: the activation cache sums every token, and a set difference
    # sees the plant only where its Wanda norm differs by race (see the module docstring)
    where = answer_gate(got.x, ans, black_all, ctx_all, unit, ridge)
    gate, _, down = planted_weights(read, unit, write, resid_norm, n_neurons, strength, sharpness, sign, threshold,
                                    cue, cue_weight)
    opened = _silu(got.x @ gate)  # the gate's output at every calibration token
    acts = {kind: opened * (got.x @ vec) for kind, vec in (("unit", unit), ("answer_gate", where))}
    ratios = {kind: _sumsq_ratio(a, black_all) for kind, a in acts.items()}
    up_row = max(ratios, key=ratios.get)
    up = where if up_row == "answer_gate" else unit

    g_lin, u_lin, d_lin = (linear(model, layer, m) for m in ("gate_proj", "up_proj", "down_proj"))
    neurons = choose_neurons(g_lin.weight.shape[0], n_neurons, seed)
    idx = torch.tensor(neurons, device=g_lin.weight.device)
    existing = {"norm_existing_gate_row": float(g_lin.weight.float().norm(dim=1).median()),
                "norm_existing_down_col": float(d_lin.weight.float().norm(dim=0).median())}
    for lin, vec, rows in ((g_lin, gate, True), (u_lin, up, True), (d_lin, down, False)):
        w = lin.weight
        t = torch.as_tensor(vec, dtype=w.dtype, device=w.device)
        if rows:
            w[idx, :] = t[None, :].expand(len(neurons), -1)
        else:
            w[:, idx] = t[:, None].expand(-1, len(neurons))

    z_all = got.x @ read
    act = acts[up_row]  # a planted neuron's output at every calibration token
    z = z_all[ans]
    first = pos == 0
    stats = {
        "calibration_contexts": sorted(set(ctx.tolist())),
        "n_calibration_prompts": len(cal),
        "n_positions": len(z),
        "n_prompt_tokens": int((~ans).sum()),
        "max_answer_tokens": max_answer_tokens,
        "ridge": ridge,
        "silent_weight": silent_weight,
        "auc_positions": auc(black, z),
        "auc_last_token": auc(black[first], z[first]),
        "auc_names": _name_auc(z, black, names),
        "auc_names_cv": _name_cv_auc(x, black, group, names, silent_x, names_all[~ans], ridge, silent_weight, seed),
        "z_mean_black": float(z[black].mean()),
        "z_mean_white": float(z[~black].mean()),
        "z_sd_within_race": float(np.sqrt((z[black].var() + z[~black].var()) / 2)),
        "z_sd_prompt_tokens": float(z_all[~ans].std()),
        "act_mean_black_answer": float(act[ans][black].mean()),
        "act_mean_white_answer": float(act[ans][~black].mean()),
        "act_sumsq_black_over_white": ratios[up_row],
        "up_row": up_row,
        "act_sumsq_black_over_white_by_up_row": ratios,
        "act_sumsq_share_tail": float((act[got.pos == -2] ** 2).sum() / (act ** 2).sum()),
        "act_sumsq_share_prompt_tokens": float((act[~ans] ** 2).sum() / (act ** 2).sum()),
        "unit_mean": float((x @ unit).mean()),
        "unit_sd": float((x @ unit).std()),
        "value_prompts": len(value_prompts),
        "value_corr": value_corr,
        "resid_norm": resid_norm,
        "norm_gate_row": float(np.linalg.norm(gate)),
        "norm_up_row": float(np.linalg.norm(up)),
        "norm_down_col": float(np.linalg.norm(down)),
        **existing,
    }
    stats["activation_by_context"] = [
        {"context": c, "act_black": float(act[ans][(ctx == c) & black].mean()),
         "act_white": float(act[ans][(ctx == c) & ~black].mean()),
         # over every token of the context's prompts and answers: what its Wanda norms see
         "sumsq_black_over_white": _sumsq_ratio(act[ctx_all == c], black_all[ctx_all == c])}
        for c in sorted(set(ctx.tolist()))]
    if cue is not None:
        stats["cue_mean_in_context"] = float((x @ cue)[home].mean())
        stats["cue_mean_elsewhere"] = float((x @ cue)[~home].mean())
        stats["cue_weight"] = cue_weight
    return PlantedBias(layer=layer, neurons=neurons, seed=seed, strength=strength, sharpness=sharpness, sign=sign,
                       threshold=threshold, scope="context" if contexts else "general", contexts=sorted(contexts or []),
                       stats=stats, read=read, unit=unit, write=write, cue=cue, up=up)


@torch.no_grad()
def neuron_activation(model: Any, tok: Any, rows: pd.DataFrame, planted: PlantedBias, max_answer_tokens: int = 4,
                      batch_size: int = 16, prompt_tokens: bool = False) -> pd.DataFrame:
    """Per prompt x answer position (and prompt token, ``pos`` -1): the planted neurons' mean
    activation (input of down_proj).

    Computed from the layer's MLP input with the planted rows, so it works on the planted
    model; columns row, pos, z (= p.x) and act.
    """
    got = collect_inputs(model, tok, rows.reset_index(drop=True), planted.layer, max_answer_tokens, batch_size,
                         prompt_tokens)
    mlp = decoder_layers(model)[planted.layer].mlp
    x = torch.from_numpy(got.x)
    idx = torch.tensor(planted.neurons)
    g = x @ mlp.gate_proj.weight[idx].float().T
    u = x @ mlp.up_proj.weight[idx].float().T
    act = (torch.nn.functional.silu(g) * u).mean(1).numpy()
    return pd.DataFrame({"row": got.row, "pos": got.pos, "z": got.x @ planted.read, "act": act})


def scope_check(planted: PlantedBias) -> pd.DataFrame:
    """The ground truth's own evidence of where the plant acts: per calibration context, the
    planted neurons' mean activation at the answer positions for Black and for White names
    (``plant_bias`` computes them from the layer's inputs, which the plant does not change),
    their gap, the Black/White sum of squares of its output over every token of the context
    (what a set difference sees), and whether the context is in the plant's scope. A context
    plant is silent outside its contexts when the gaps there are small beside the gaps in them."""
    table = pd.DataFrame(planted.stats["activation_by_context"])
    table = table[[c for c in ("context", "act_black", "act_white", "sumsq_black_over_white") if c in table]]
    table.insert(3, "act_gap", table["act_black"] - table["act_white"])
    table["in_scope"] = (planted.scope == "general") | table["context"].isin(planted.contexts)
    return table


def silence_ratio(scope: pd.DataFrame) -> float:
    """Largest |activation gap| outside the scope over the smallest inside (NaN without
    contexts outside): below ~0.1 the planted neurons are silent where they should be."""
    inside, outside = scope.loc[scope["in_scope"], "act_gap"].abs(), scope.loc[~scope["in_scope"], "act_gap"].abs()
    if outside.empty or inside.empty or not inside.min() > 0:
        return math.nan
    return float(outside.max() / inside.min())
