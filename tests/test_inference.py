"""Name-level inference, checked against hand computations and by simulation."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from prunebias.stats.inference import (MDE_FACTOR, NameData, bootstrap_weights, estimate, name_bootstrap,
                                        paired_bootstrap, permutation_p, toward_zero, versus_controls)
from prunebias.stats.metrics import smd


def make(groups: dict[str, tuple[str, list[float]]], strata: dict[str, str] | None = None) -> NameData:
    names, race, vals, strat = [], [], [], []
    for name, (r, vs) in groups.items():
        for v in vs:
            names.append(name)
            race.append(r)
            vals.append(v)
            strat.append((strata or {}).get(name, ""))
    return NameData.from_answers(names, race, vals, strat)


DATA = {
    "w1": ("white", [10.0, 12.0, 11.0]), "w2": ("white", [30.0, 28.0]), "w3": ("white", [5.0, 7.0, 6.0, 6.5]),
    "b1": ("black", [9.0, 8.0]), "b2": ("black", [20.0, 22.0, 25.0]), "b3": ("black", [4.0, float("nan"), 3.0]),
}


def pooled(data: dict, take: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(data[n][1], float) for n in take])


def test_point_estimates_by_hand():
    d = make(DATA)
    w = pooled(DATA, ["w1", "w2", "w3"])
    b = pooled(DATA, ["b1", "b2", "b3"])
    b = b[np.isfinite(b)]
    assert estimate(d, "diff") == pytest.approx(w.mean() - b.mean())
    assert estimate(d, "smd") == pytest.approx(smd(w, b))
    assert estimate(d, "log_smd") == pytest.approx(smd(np.log1p(w), np.log1p(b)))
    pairs = [np.sign(x - y) for x in w for y in b]
    assert estimate(d, "cliffs_delta") == pytest.approx(np.mean(pairs))
    assert d.n_answers == (9, 7) and d.n_names == (3, 3)


def test_one_bootstrap_replicate_is_a_resample_of_names():
    d = make(DATA)
    cw, cb = bootstrap_weights(d, 5, np.random.default_rng(3))
    from prunebias.stats.inference import _Suff

    for effect in ("smd", "cliffs_delta", "log_smd"):
        reps = _Suff(d, effect).evaluate(cw, cb)
        for r in range(5):
            take_w = [n for i, n in enumerate(d.names) for _ in range(int(cw[r, i]))]
            take_b = [n for i, n in enumerate(d.names) for _ in range(int(cb[r, i]))]
            w, b = pooled(DATA, take_w), pooled(DATA, take_b)
            b = b[np.isfinite(b)]
            if effect == "smd":
                want = smd(w, b)
            elif effect == "log_smd":
                want = smd(np.log1p(w), np.log1p(b))
            else:
                want = np.mean(np.sign(w[:, None] - b[None, :]))
            assert reps[r] == pytest.approx(want), (effect, r)
    # names are resampled within race: White weights sum to the number of White names
    assert (cw.sum(1) == 3).all() and (cb.sum(1) == 3).all() and (cw[:, ~d.white] == 0).all()


def test_permutation_p_matches_exact_enumeration():
    data = {f"w{i}": ("white", [v, v + 1]) for i, v in enumerate([5.0, 7.0, 9.0, 6.0])}
    data.update({f"b{i}": ("black", [v, v + 2]) for i, v in enumerate([4.0, 3.0, 6.5, 2.0])})
    d = make(data)
    obs = abs(estimate(d, "diff"))
    names = list(d.names)
    count = total = 0
    for white in itertools.combinations(range(8), 4):
        labels = {n: ("white" if i in white else "black") for i, n in enumerate(names)}
        relabeled = {n: (labels[n], data[n][1]) for n in names}
        count += abs(estimate(make(relabeled), "diff")) >= obs - 1e-12
        total += 1
    exact = count / total
    assert permutation_p(d, "diff", n_perm=20000, seed=1) == pytest.approx(exact, abs=0.01)


def test_permutations_keep_strata():
    data = {f"wm{i}": ("white", [float(i)]) for i in range(3)}
    data.update({f"ww{i}": ("white", [float(i + 10)]) for i in range(3)})
    data.update({f"bm{i}": ("black", [float(i)]) for i in range(3)})
    data.update({f"bw{i}": ("black", [float(i + 10)]) for i in range(3)})
    gender = {n: ("man" if n[1] == "m" else "woman") for n in data}
    # within gender the races are identical: any stratified permutation gives |diff| = observed 0
    assert permutation_p(make(data, gender), "diff", n_perm=200) == 1.0


def test_paired_bootstrap_by_hand():
    ref = make(DATA)
    shifted = {n: (r, [v - 3.0 if r == "white" else v for v in vs]) for n, (r, vs) in DATA.items()}
    pr = make(shifted)
    res = paired_bootstrap(ref, pr, "diff", n_boot=500, seed=2)
    assert res.delta.estimate == pytest.approx(-3.0)
    # a constant shift of one group is the same in every paired replicate: zero-width CI
    assert res.delta.ci_low == pytest.approx(-3.0) and res.delta.ci_high == pytest.approx(-3.0)
    assert res.ref.estimate == pytest.approx(estimate(ref, "diff"))
    # unpaired draws would scatter: the paired SE is 0, the reference's own SE is not
    assert res.delta.se == pytest.approx(0.0, abs=1e-9) and res.ref.se > 1
    red = res.reduction
    if res.ref_significant:
        assert red.estimate == pytest.approx(1 - abs(res.pruned.estimate) / abs(res.ref.estimate))
    else:
        assert math.isnan(red.estimate) and math.isnan(red.ci_low)


def test_reduction_only_for_a_clear_reference():
    rng = np.random.default_rng(0)
    strong = {f"w{i}": ("white", list(rng.normal(3, 1, 5))) for i in range(15)}
    strong.update({f"b{i}": ("black", list(rng.normal(0, 1, 5))) for i in range(15)})
    null = {n: (r, list(rng.normal(0, 1, 5))) for n, (r, _) in strong.items()}
    gone = {n: (r, list(rng.normal(0, 1, 5))) for n, (r, _) in strong.items()}
    clear = paired_bootstrap(make(strong), make(gone), "smd", n_boot=400, seed=1)
    assert clear.ref_significant and clear.reduction.estimate > 0.7 and clear.reduction.ci_low > 0.3
    vague = paired_bootstrap(make(null), make(gone), "smd", n_boot=400, seed=1)
    assert not vague.ref_significant and math.isnan(vague.reduction.estimate)


def test_versus_controls():
    rng = np.random.default_rng(1)
    ref = {f"w{i}": ("white", list(rng.normal(2, 1, 4))) for i in range(12)}
    ref.update({f"b{i}": ("black", list(rng.normal(0, 1, 4))) for i in range(12)})
    real = {n: (r, [v - 2 if r == "white" else v for v in vs]) for n, (r, vs) in ref.items()}  # bias removed
    ctrl = [make({n: (r, [v + rng.normal(0, 0.1) for v in vs]) for n, (r, vs) in ref.items()}) for _ in range(3)]
    iv = versus_controls(make(ref), make(real), ctrl, "diff", n_boot=400, seed=0)
    want = abs(estimate(make(real), "diff")) - np.mean([abs(estimate(c, "diff")) for c in ctrl])
    assert iv.estimate == pytest.approx(want)
    assert iv.ci_high < 0  # the real mask removes more bias than the controls
    assert iv.mde == pytest.approx(MDE_FACTOR * iv.se)


def test_versus_controls_along_the_bias_is_signed():
    """With the bias's sign the comparison is sign * (real - mean of controls): no |.|."""
    rng = np.random.default_rng(4)
    ref = {f"w{i}": ("white", list(rng.normal(-2, 1, 4))) for i in range(12)}
    ref.update({f"b{i}": ("black", list(rng.normal(0, 1, 4))) for i in range(12)})
    real = {n: (r, [v + 2.5 if r == "white" else v for v in vs]) for n, (r, vs) in ref.items()}  # overshoots 0
    ctrl = [make({n: (r, [v + rng.normal(0, 0.1) for v in vs]) for n, (r, vs) in ref.items()}) for _ in range(2)]
    iv = versus_controls(make(ref), make(real), ctrl, "diff", n_boot=300, seed=0, sign=-1)
    want = -(estimate(make(real), "diff") - np.mean([estimate(c, "diff") for c in ctrl]))
    assert iv.estimate == pytest.approx(want) and iv.ci_high < 0
    folded = versus_controls(make(ref), make(real), ctrl, "diff", n_boot=300, seed=0)
    assert folded.estimate > want  # |.| counts the overshoot past 0 as bias left


def test_toward_zero_does_not_fold_where_the_bias_is_gone():
    """A mask that removes an established bias: the change toward 0 is sign * (pruned - ref)
    with the flipped CI of the signed change; the change of |effect| folds at 0, so its
    estimate is pulled toward 0 and its CI reaches further up."""
    rng = np.random.default_rng(7)
    ref = {f"w{i}": ("white", list(rng.normal(-0.7, 1, 4))) for i in range(16)}
    ref.update({f"b{i}": ("black", list(rng.normal(0, 1, 4))) for i in range(16)})
    gone = {n: (r, list(rng.normal(0, 1, 4))) for n, (r, _) in ref.items()}
    res = paired_bootstrap(make(ref), make(gone), "diff", n_boot=1000, seed=3)
    tz = toward_zero(res.delta, -1)
    assert tz.estimate == pytest.approx(-res.delta.estimate)
    assert (tz.ci_low, tz.ci_high) == pytest.approx((-res.delta.ci_high, -res.delta.ci_low))
    assert tz.ci_high < 0
    assert res.delta_abs.ci_high - res.delta_abs.estimate > tz.ci_high - tz.estimate  # the folded upper tail
    assert all(math.isnan(v) for v in (toward_zero(res.delta, 0).estimate, toward_zero(res.delta, 0).ci_low))


def simulate(rng, n_names=20, n_samples=8, effect=0.0, icc=0.4):
    """Name-clustered answers: value = race effect + name effect + answer noise (total variance 1)."""
    groups = {}
    for race, mu in (("white", effect), ("black", 0.0)):
        for i in range(n_names):
            u = rng.normal(0, math.sqrt(icc))
            groups[f"{race}{i}"] = (race, list(mu + u + rng.normal(0, math.sqrt(1 - icc), n_samples)))
    return make(groups)


def test_calibration_coverage_and_null_p_values():
    """On 200 simulated name-clustered data sets (20 names per race, 8 answers each, ICC
    0.4): the 95% name-bootstrap CI of the mean difference covers the true 0.5 in at
    least 90% of them; under no effect, name-permutation p-values are uniform (KS test
    against U(0, 1) not rejected at 1%) with a 5%-rejection rate between 1% and 10%.
    The answer-level (iid) bootstrap, for contrast, is shown to under-cover."""
    rng = np.random.default_rng(20251129)
    cover = iid_cover = 0
    pvals = []
    for rep in range(200):
        d = simulate(rng, effect=0.5)
        iv = name_bootstrap(d, "diff", n_boot=400, seed=rep)
        cover += iv.ci_low <= 0.5 <= iv.ci_high
        w = np.concatenate([v for v, white in zip(d.values, d.white) if white])
        b = np.concatenate([v for v, white in zip(d.values, d.white) if not white])
        bw = rng.choice(w, (400, w.size)).mean(1) - rng.choice(b, (400, b.size)).mean(1)
        lo, hi = np.quantile(bw, [0.025, 0.975])
        iid_cover += lo <= 0.5 <= hi
        pvals.append(permutation_p(simulate(rng, effect=0.0), "diff", n_perm=400, seed=rep))
    assert cover / 200 >= 0.90
    assert iid_cover / 200 < cover / 200  # ignoring the clustering gives too narrow CIs
    pvals = np.array(pvals)
    assert stats.kstest(pvals, "uniform").pvalue > 0.01
    assert 0.01 <= np.mean(pvals < 0.05) <= 0.10


@pytest.mark.parametrize("n_names", [5, 10])
def test_calibration_holds_down_to_five_names_per_race(n_names):
    """With 5 and 10 names per race (4 answers each, ICC 0.4; 300 simulated designs each):
    the expanded percentile CI covers the true effect in at least 90% of designs, for the
    baseline's mean difference and log SMD and for a paired change. The plain percentile
    interval of the same replicates covers less (at 5 names about 85%: why it is not used).
    A row of the audit's published purchase-house prompts has 8 and 10 names."""
    from prunebias.stats.inference import _Suff

    rng = np.random.default_rng(7)
    cover = {"diff": 0, "log_smd": 0, "paired": 0, "plain": 0}
    reps = 300
    for r in range(reps):
        d = simulate(rng, n_names=n_names, n_samples=4, effect=0.5)
        cover["diff"] += (iv := name_bootstrap(d, "diff", n_boot=400, seed=r)).ci_low <= 0.5 <= iv.ci_high
        logged = d.with_values([np.expm1(v + 5) for v in d.values])  # log1p gives back v + 5
        cover["log_smd"] += (iv := name_bootstrap(logged, "log_smd", n_boot=400, seed=r)).ci_low <= 0.5 <= iv.ci_high
        # pruned: the same answers, White names lowered by 0.3, plus fresh answer noise
        pruned = d.with_values([v - 0.3 * w + rng.normal(0, 0.3, v.size) for v, w in zip(d.values, d.white)])
        res = paired_bootstrap(d, pruned, "diff", n_boot=400, seed=r)
        cover["paired"] += res.delta.ci_low <= -0.3 <= res.delta.ci_high
        cw, cb = bootstrap_weights(d, 400, np.random.default_rng(r))
        lo, hi = np.quantile(_Suff(d, "diff").evaluate(cw, cb), [0.025, 0.975])
        cover["plain"] += lo <= 0.5 <= hi
    rates = {k: v / reps for k, v in cover.items()}
    assert min(rates["diff"], rates["log_smd"], rates["paired"]) >= 0.90, rates
    assert rates["plain"] < rates["diff"], rates
