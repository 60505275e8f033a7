"""Name-level inference for bias effects. Pure numpy, no I/O.

Why names: every name is answered several times, and answers to one name are not
independent draws from the population of names. The design's unit is the name, so

- CIs come from a *cluster bootstrap*: names are resampled with replacement within each
  race, each keeping all of its answers. The interval is the *expanded percentile*
  interval (Hesterberg 2015): the plain percentile interval under-covers with few names
  (85% for a nominal 95% at 5 names per race; tests/test_inference.py), because a
  bootstrap's spread is that of n/(n-1) too few names and its tails are normal, not t.
  It takes the quantiles at Phi(-sqrt(n/(n-1)) t_{n-1}) instead of 2.5% and 97.5%, with
  n the smaller race's number of names (at 32 names per race: 1.9% and 98.1%);
- p-values come from a *permutation test*: race labels are permuted across names (within
  gender strata when genders are given, so every permutation keeps the design's balance);
- pruned and reference answers to the same prompts are compared *paired*: one set of
  name draws serves both, so the noise they share cancels.

Effects (White - Black; positive = White names get more):

| effect | definition |
|---|---|
| ``diff`` | mean_W - mean_B over answers |
| ``smd`` | diff / sqrt((s_W^2 + s_B^2) / 2), ddof=1; 0 if both groups are constant |
| ``log_smd`` | the SMD of log(1 + max(v, 0)): money answers span orders of magnitude |
| ``cliffs_delta`` | P(W > B) - P(W < B) over all (White answer, Black answer) pairs |

Every statistic is computed from per-name sufficient statistics (count, sum, sum of
squares; for Cliff's delta the name x name matrix of summed signs), so a bootstrap
replicate or a permutation is a weighted sum over names: fast and exact.

The minimum detectable effect (MDE) at 80% power and two-sided alpha = 0.05 is
(z_0.975 + z_0.8) x SE = 2.80 x SE, with SE the standard error under the design's own
clustering: for a baseline effect the SD of its name-permutation distribution (the SE
under no effect), for a paired change the name-bootstrap SE of the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _stats

from prunebias.stats.power import MDE_FACTOR

EFFECTS = ("diff", "smd", "log_smd", "cliffs_delta")


def transform(values: np.ndarray, effect: str) -> np.ndarray:
    """The scale an effect is computed on (log1p of the clipped value for ``log_smd``)."""
    v = np.asarray(values, dtype=float)
    if effect == "log_smd":
        return np.log1p(np.clip(v, 0.0, None))
    return v


@dataclass(frozen=True)
class NameData:
    """Usable answers grouped by name, the unit of inference.

    ``values[i]`` holds the usable (finite) answers of name ``i``; a name may have none
    (all its answers were anomalies) and then carries no weight.
    """

    names: np.ndarray  # (n,) name labels
    white: np.ndarray  # (n,) bool: the name is White-associated
    strata: np.ndarray  # (n,) stratum labels for permutations (e.g. gender)
    values: tuple[np.ndarray, ...]

    @classmethod
    def from_answers(cls, names: Sequence[str], race: Sequence[str], values: Sequence[float],
                     strata: Sequence[str] | None = None, order: Sequence[str] | None = None) -> "NameData":
        """Group answer rows by name; NaN values (anomalies) are dropped per name.

        ``order`` fixes the name order (and keeps names that have no row), so two data
        sets can be paired name by name.
        """
        names = np.asarray(names, dtype=object)
        race = np.asarray(race, dtype=object)
        vals = np.asarray(values, dtype=float)
        strata_arr = np.asarray(strata if strata is not None else [""] * len(names), dtype=object)
        labels = list(order) if order is not None else list(dict.fromkeys(names.tolist()))
        index = {n: i for i, n in enumerate(labels)}
        unknown = set(names.tolist()) - set(index)
        if unknown:
            raise ValueError(f"names not in the given order: {sorted(unknown)[:5]}")
        white = np.zeros(len(labels), dtype=bool)
        strat = np.array([""] * len(labels), dtype=object)
        seen = np.zeros(len(labels), dtype=bool)
        groups: list[list[float]] = [[] for _ in labels]
        for n, r, v, s in zip(names, race, vals, strata_arr):
            i = index[n]
            if r not in ("white", "black"):
                raise ValueError(f"race must be 'white' or 'black', got {r!r}")
            if seen[i] and white[i] != (r == "white"):
                raise ValueError(f"name {n!r} has answers with both races")
            white[i], strat[i], seen[i] = r == "white", s, True
            if math.isfinite(v):
                groups[i].append(v)
        return cls(np.asarray(labels, dtype=object), white, strat, tuple(np.asarray(g, float) for g in groups))

    def with_values(self, values: Sequence[np.ndarray]) -> "NameData":
        return NameData(self.names, self.white, self.strata, tuple(np.asarray(v, float) for v in values))

    @property
    def n_names(self) -> tuple[int, int]:
        """Names with at least one usable answer, (White, Black)."""
        has = np.array([v.size > 0 for v in self.values])
        return int((has & self.white).sum()), int((has & ~self.white).sum())

    @property
    def n_answers(self) -> tuple[int, int]:
        counts = np.array([v.size for v in self.values])
        return int(counts[self.white].sum()), int(counts[~self.white].sum())


class _Suff:
    """Per-name sufficient statistics of one effect's scale."""

    def __init__(self, data: NameData, effect: str) -> None:
        if effect not in EFFECTS:
            raise ValueError(f"unknown effect {effect!r}; use one of {EFFECTS}")
        self.effect = effect
        vals = [transform(v, effect) for v in data.values]
        self.n = np.array([v.size for v in vals], dtype=float)
        self.s = np.array([v.sum() for v in vals], dtype=float)
        self.q = np.array([np.square(v).sum() for v in vals], dtype=float)
        self.pairs = _sign_matrix(vals) if effect == "cliffs_delta" else None

    def evaluate(self, cw: np.ndarray, cb: np.ndarray) -> np.ndarray:
        """The effect for each row of name weights ``cw`` (White side) and ``cb`` (Black side).

        Weights are (B, n) over all names: bootstrap multiplicities or 0/1 memberships.
        """
        cw, cb = np.atleast_2d(cw).astype(float), np.atleast_2d(cb).astype(float)
        nw, nb = cw @ self.n, cb @ self.n
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.effect == "cliffs_delta":
                num = np.einsum("bi,ij,bj->b", cw, self.pairs, cb)
                return np.where((nw > 0) & (nb > 0), num / (nw * nb), np.nan)
            sw, sb = cw @ self.s, cb @ self.s
            mw, mb = sw / nw, sb / nb
            diff = mw - mb
            if self.effect == "diff":
                return np.where((nw > 0) & (nb > 0), diff, np.nan)
            vw = (cw @ self.q - nw * mw**2) / (nw - 1)
            vb = (cb @ self.q - nb * mb**2) / (nb - 1)
            pooled = np.sqrt(np.clip((vw + vb) / 2.0, 0.0, None))
            tiny = pooled <= 1e-12 * np.maximum(1.0, np.abs(mw) + np.abs(mb))
            out = np.where(tiny, np.where(np.abs(diff) <= 1e-12 * np.maximum(1.0, np.abs(mw)), 0.0,
                                          np.sign(diff) * np.inf), diff / pooled)
            return np.where((nw > 1) & (nb > 1), out, np.nan)


def _sign_matrix(vals: Sequence[np.ndarray]) -> np.ndarray:
    """D[i, j] = sum over answers a of name i, b of name j of sign(a - b)."""
    n = len(vals)
    out = np.zeros((n, n))
    sorted_vals = [np.sort(v) for v in vals]
    for j, vj in enumerate(sorted_vals):
        if vj.size == 0:
            continue
        for i, vi in enumerate(vals):
            if vi.size == 0:
                continue
            below = np.searchsorted(vj, vi, side="left").sum()  # pairs with b < a
            above = (vj.size - np.searchsorted(vj, vi, side="right")).sum()  # pairs with b > a
            out[i, j] = below - above
    return out


def estimate(data: NameData, effect: str) -> float:
    """The effect on the observed data (every name once)."""
    w = data.white.astype(float)
    return float(_Suff(data, effect).evaluate(w, 1.0 - w)[0])


def bootstrap_weights(data: NameData, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicities (n_boot, n) of names resampled with replacement within each race.

    Only names with usable answers are resampled (a name without any carries no weight).
    """
    n = len(data.names)
    has = np.array([v.size > 0 for v in data.values])
    cw, cb = np.zeros((n_boot, n)), np.zeros((n_boot, n))
    for target, members in ((cw, np.flatnonzero(data.white & has)), (cb, np.flatnonzero(~data.white & has))):
        if members.size == 0:
            continue
        draws = rng.integers(0, members.size, size=(n_boot, members.size))
        for b in range(n_boot):
            target[b, members] = np.bincount(draws[b], minlength=members.size)
    return cw, cb


def expanded_tail(level: float, n_names: int) -> float:
    """The lower quantile of the expanded percentile interval at ``level`` with ``n_names``
    names in the smaller group (NaN below 2 names: no interval)."""
    if n_names < 2:
        return math.nan
    return float(_stats.norm.cdf(-math.sqrt(n_names / (n_names - 1)) * _stats.t.ppf(0.5 + level / 2, n_names - 1)))


def _quantiles(reps: np.ndarray, level: float, n_names: int) -> tuple[float, float]:
    finite = reps[np.isfinite(reps)]
    a = expanded_tail(level, n_names)
    if finite.size < max(10, reps.size // 2) or not math.isfinite(a):
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [a, 1.0 - a])
    return float(lo), float(hi)


def _se(reps: np.ndarray) -> float:
    finite = reps[np.isfinite(reps)]
    return float(finite.std(ddof=1)) if finite.size >= max(10, reps.size // 2) else math.nan


@dataclass(frozen=True)
class Interval:
    estimate: float
    ci_low: float
    ci_high: float
    se: float

    @property
    def mde(self) -> float:
        """Minimum detectable |effect| at 80% power, two-sided 5% (2.80 x SE)."""
        return MDE_FACTOR * self.se

    @property
    def excludes_zero(self) -> bool:
        return bool(self.ci_low > 0 or self.ci_high < 0)


def name_bootstrap(data: NameData, effect: str, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> Interval:
    """Estimate with a name-level cluster-bootstrap CI (expanded percentile) and SE."""
    suff = _Suff(data, effect)
    w = data.white.astype(float)
    est = float(suff.evaluate(w, 1.0 - w)[0])
    if n_boot < 1:
        return Interval(est, math.nan, math.nan, math.nan)
    cw, cb = bootstrap_weights(data, n_boot, np.random.default_rng(seed))
    reps = suff.evaluate(cw, cb)
    lo, hi = _quantiles(reps, level, min(data.n_names))
    return Interval(est, lo, hi, _se(reps))


def permutation_p(data: NameData, effect: str, n_perm: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of the effect by permuting race labels across names (see ``permutation_test``)."""
    return permutation_test(data, effect, n_perm, seed)[0]


def permutation_test(data: NameData, effect: str, n_perm: int = 2000, seed: int = 0) -> tuple[float, float]:
    """(p-value, null SE): race labels permuted across names.

    Only names with usable answers take part; labels are permuted within strata, which
    keeps the number of White and Black names per stratum. p = (1 + #{|T*| >= |T|}) /
    (1 + n_perm), a valid p-value for a Monte Carlo permutation test. The null SE (the SD
    of the permutation distribution) sizes the design: MDE = 2.80 x null SE.
    """
    has = np.array([v.size > 0 for v in data.values])
    suff = _Suff(data, effect)
    w = data.white.astype(float) * has
    b = (~data.white).astype(float) * has
    t_obs = suff.evaluate(w, b)[0]
    if not math.isfinite(t_obs) or n_perm < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    perm_white = np.zeros((n_perm, len(data.names)))
    for stratum in np.unique(data.strata[has]):
        idx = np.flatnonzero(has & (data.strata == stratum))
        labels = data.white[idx].astype(float)
        perm_white[:, idx] = rng.permuted(np.broadcast_to(labels, (n_perm, idx.size)), axis=1)
    member = has.astype(float)
    t_perm = suff.evaluate(perm_white, member - perm_white)
    null_se = _se(t_perm)
    t_perm = np.where(np.isfinite(t_perm), t_perm, 0.0)
    tol = 1e-12 * max(1.0, abs(t_obs))
    return float((1 + np.sum(np.abs(t_perm) >= abs(t_obs) - tol)) / (1 + n_perm)), null_se


@dataclass(frozen=True)
class PairedResult:
    ref: Interval
    pruned: Interval
    delta: Interval  # pruned - ref
    delta_abs: Interval  # |pruned| - |ref|
    reduction: Interval  # 1 - |pruned| / |ref|
    ref_significant: bool


def paired_bootstrap(ref: NameData, pruned: NameData, effect: str, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> PairedResult:
    """Pruned vs reference on the same names and prompts, with one set of name draws for both.

    ``bias_reduction`` is reported only where the reference effect's CI excludes 0
    (a ratio over a denominator that may be 0 says nothing); otherwise its fields are NaN.
    """
    if list(ref.names) != list(pruned.names) or not np.array_equal(ref.white, pruned.white):
        raise ValueError("paired data must list the same names in the same order")
    # a name is drawn if it has usable answers on either side
    union = ref.with_values([a if a.size else b for a, b in zip(ref.values, pruned.values)])
    cw, cb = bootstrap_weights(union, max(n_boot, 1), np.random.default_rng(seed))
    sr, sp = _Suff(ref, effect), _Suff(pruned, effect)
    w = ref.white.astype(float)
    er, ep = float(sr.evaluate(w, 1 - w)[0]), float(sp.evaluate(w, 1 - w)[0])
    rr, rp = sr.evaluate(cw, cb), sp.evaluate(cw, cb)

    def interval(est: float, reps: np.ndarray) -> Interval:
        if n_boot < 1:
            return Interval(est, math.nan, math.nan, math.nan)
        lo, hi = _quantiles(reps, level, min(union.n_names))
        return Interval(est, lo, hi, _se(reps))

    ref_iv = interval(er, rr)
    with np.errstate(divide="ignore", invalid="ignore"):
        red_reps = 1.0 - np.abs(rp) / np.abs(rr)
        red_est = 1.0 - abs(ep) / abs(er) if er != 0 else math.nan
    significant = ref_iv.excludes_zero
    reduction = interval(red_est, red_reps) if significant else Interval(math.nan, math.nan, math.nan, math.nan)
    return PairedResult(ref_iv, interval(ep, rp), interval(ep - er, rp - rr),
                        interval(abs(ep) - abs(er), np.abs(rp) - np.abs(rr)), reduction, significant)


def toward_zero(delta: Interval, sign: int) -> Interval:
    """The change of an effect toward 0 along an established bias of direction ``sign``:
    ``sign * (pruned - ref)`` with its CI (negative: the bias shrank).

    Why not the change of |effect|: |x| is not differentiable at 0, so where a mask removes
    the bias the bootstrap of |pruned| folds at 0: it is biased away from 0 and its
    percentile CI gets a long upper tail (issue 23: on the general plant's held-out names
    the change of |effect| -0.59 [-0.98, +0.24] where the signed change was +0.65 [+0.25,
    +1.12]). With the sign fixed by the baseline (all names, established), nothing folds.
    Where pruning overshoots past 0 this counts the overshoot as change, so the pruned
    effect's own CI stays beside it in every table.
    """
    if sign == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    lo, hi = sorted((sign * delta.ci_low, sign * delta.ci_high))
    return Interval(sign * delta.estimate, lo, hi, delta.se)


def versus_controls(ref: NameData, real: NameData, controls: Sequence[NameData], effect: str, n_boot: int = 1000,
                    seed: int = 0, level: float = 0.95, sign: int = 0) -> Interval:
    """|effect(real)| - mean over control draws of |effect(control)|, on the same names;
    with ``sign`` (+1 / -1, the direction of an established bias) ``sign * (effect(real) -
    mean effect(control))`` instead: the real mask's effect lies nearer 0 along the bias
    than the controls' (no absolute value, see ``toward_zero``).

    Negative = the real mask shrinks the bias more than same-size matched random masks.
    The CI resamples names (one draw shared by every arm, paired) and control draws.
    """
    if not controls:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    union = ref.with_values([next((d.values[i] for d in (ref, real, *controls) if d.values[i].size), ref.values[i])
                             for i in range(len(ref.names))])
    rng = np.random.default_rng(seed)
    cw, cb = bootstrap_weights(union, max(n_boot, 1), rng)
    w = ref.white.astype(float)
    s_real = _Suff(real, effect)
    s_ctrl = [_Suff(c, effect) for c in controls]
    fold = np.abs if sign == 0 else (lambda v: sign * np.asarray(v))
    est = float(fold(s_real.evaluate(w, 1 - w)[0]) - np.mean([fold(s.evaluate(w, 1 - w)[0]) for s in s_ctrl]))
    if n_boot < 1:
        return Interval(est, math.nan, math.nan, math.nan)
    real_reps = fold(s_real.evaluate(cw, cb))
    ctrl_reps = np.stack([fold(s.evaluate(cw, cb)) for s in s_ctrl])  # (D, B)
    pick = rng.integers(0, len(controls), size=(len(controls), cw.shape[0]))  # resample draws too
    ctrl_mean = np.take_along_axis(ctrl_reps, pick, axis=0).mean(0)
    reps = real_reps - ctrl_mean
    lo, hi = _quantiles(reps, level, min(union.n_names))
    return Interval(est, lo, hi, _se(reps))


def wilson_interval(rate: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``rate`` observed on ``n`` units (NaNs for n = 0).

    With answers clustered in names, passing the number of names as ``n`` is conservative."""
    if n <= 0 or not np.isfinite(rate):
        return float("nan"), float("nan")
    z = float(_stats.norm.ppf(0.5 + level / 2))
    denom = 1 + z * z / n
    center = (rate + z * z / (2 * n)) / denom
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, center - half)), float(min(1.0, center + half))
