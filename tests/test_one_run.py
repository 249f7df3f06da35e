"""The one-run ε lower bound (curvmia/one_run.py) and its audit (curvmia/one_run_audit.py):
the p-value against plain-Python sums, the root search, the guesses, a randomized-response
simulation with known ε, and the rules that keep the choice off the target's labels."""

import math

import numpy as np
import pandas as pd
import pytest

from curvmia.one_run import EPS_TOL, count, eps_lower, guesses, p_value
from curvmia.one_run_audit import (
    HEADLINE,
    INDIVIDUAL,
    ONE_RUN_COLUMNS,
    Selection,
    choose_attack,
    choose_k,
    headline_markdown,
    k_grid,
    not_qualifying,
    one_run_table,
    resolve_k,
    select_all,
)


def plain_p(eps, r, v, m, delta):
    """The theorem's p-value summed term by term (math.comb; no scipy)."""
    q = math.exp(eps) / (1 + math.exp(eps))

    def pmf(j):
        return math.comb(r, j) * q**j * (1 - q) ** (r - j)

    tail = sum(pmf(j) for j in range(v, r + 1))
    alpha, running = 0.0, 0.0
    for i in range(1, v + 1):
        running += pmf(v - i)
        alpha = max(alpha, running / i)
    return min(1.0, tail + 2 * m * delta * alpha)


CASES = [
    (1, 1, 10, 0.0),
    (5, 4, 10, 1e-3),
    (10, 9, 100, 1e-3),
    (20, 17, 1000, 1e-4),
    (30, 20, 50, 1e-2),
    (30, 30, 30, 1e-5),
    (120, 90, 500, 1e-3),
    # v above the mode and the mean more than 12 sd above 0: the pmf's lower window
    (400, 300, 400, 1e-3),
    (400, 330, 2000, 2.5e-4),
]


@pytest.mark.parametrize("r, v, m, delta", CASES)
@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0, 2.5])
def test_p_value_equals_plain_sum(r, v, m, delta, eps):
    assert p_value(eps, r, v, m, delta) == pytest.approx(plain_p(eps, r, v, m, delta), rel=1e-9)


def test_p_value_of_chance_and_of_all_correct():
    # at eps = 0 with delta = 0: P[Bin(r, 1/2) >= v]; r = v = 3: 1/8
    assert p_value(0.0, 3, 3, 10, 0.0) == pytest.approx(1 / 8)
    assert p_value(0.0, 4, 2, 10, 0.0) == pytest.approx(11 / 16)
    assert p_value(5.0, 10, 0, 10, 1e-3) == 1.0  # no correct guess: nothing is rejected


@pytest.mark.parametrize(
    "r, v, m, delta",
    [(50, 40, 100, 0.0), (50, 40, 100, 1e-3), (400, 330, 400, 1e-3), (2000, 1500, 2000, 2.5e-4)],
)
def test_p_value_nondecreasing_in_eps(r, v, m, delta):
    assert 2 * m * delta <= 1
    ps = [p_value(e, r, v, m, delta) for e in np.linspace(0, 6, 241)]
    # nondecreasing up to float rounding (sums of terms near p = 1 differ in the last bit)
    assert all(b >= a - 1e-12 for a, b in zip(ps, ps[1:])), ps
    assert ps[0] < ps[-1]


@pytest.mark.parametrize(
    "r, v, m, delta",
    [(10, 5, 10, 0.0), (11, 5, 100, 1e-3), (1000, 500, 1000, 1e-5), (4, 0, 4, 0.0), (0, 0, 4, 0.0)],
)
def test_no_bound_without_more_than_half_correct(r, v, m, delta):
    assert v <= r / 2
    assert eps_lower(r, v, m, delta) == 0.0


@pytest.mark.parametrize(
    "r, v, m, delta",
    [(10, 10, 10, 0.0), (30, 27, 100, 1e-3), (400, 330, 2000, 2.5e-4), (20000, 14000, 20000, 1e-5)],
)
def test_eps_lower_is_the_crossing_within_tolerance(r, v, m, delta):
    e = eps_lower(r, v, m, delta, beta=0.05)
    assert e > 0
    assert p_value(e, r, v, m, delta) < 0.05 <= p_value(e + EPS_TOL, r, v, m, delta)


def test_eps_lower_against_plain_bisection():
    r, v, m, delta, beta = 30, 26, 100, 1e-3, 0.05
    lo, hi = 0.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if plain_p(mid, r, v, m, delta) < beta else (lo, mid)
    assert abs(eps_lower(r, v, m, delta, beta) - lo) <= EPS_TOL
    # 10 of 10 correct, delta = 0: q^10 = beta, by hand
    q = 0.05 ** (1 / 10)
    assert abs(eps_lower(10, 10, 10, 0.0) - math.log(q / (1 - q))) <= EPS_TOL


def test_delta_zero_shortcut_agrees_with_the_general_search():
    for r, v in [(100, 70), (5000, 2700), (300, 300)]:
        assert abs(eps_lower(r, v, r, 0.0) - eps_lower(r, v, r, 1e-300)) <= 2 * EPS_TOL


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="v <= r"):
        p_value(1.0, 5, 6, 10, 0.0)
    with pytest.raises(ValueError, match="exceed m"):
        eps_lower(20, 15, 10, 0.0)
    with pytest.raises(ValueError, match="beta"):
        eps_lower(20, 15, 20, 0.0, beta=1.5)


def test_guesses_top_and_bottom_nan_never_guessed():
    s = np.array([0.5, np.nan, 3.0, -1.0, 2.0, np.nan, 0.0])
    g = guesses(s, 2, 1, seed=0)
    assert g.dtype == np.int8
    assert g.tolist() == [0, 0, 1, -1, 1, 0, 0]
    assert guesses(s, 5, 0, seed=0).tolist() == [1, 0, 1, 1, 1, 0, 1]
    with pytest.raises(ValueError, match="non-NaN"):
        guesses(s, 3, 3, seed=0)


def test_ties_at_the_boundary_are_broken_by_the_seed_alone():
    s = np.array([1.0] * 10 + [0.0] * 10)
    picks = {tuple(np.flatnonzero(guesses(s, 4, 0, seed=k) == 1)) for k in range(20)}
    assert len(picks) > 1  # different seeds pick different tied samples
    assert all(set(p) <= set(range(10)) and len(p) == 4 for p in picks)
    assert np.array_equal(guesses(s, 4, 3, seed=7), guesses(s, 4, 3, seed=7))
    g = guesses(s, 4, 3, seed=7)
    assert (g[10:] != 1).all() and (g[:10] != -1).all() and (g == -1).sum() == 3


def test_count():
    g = np.array([1, 1, -1, -1, 0, 0], dtype=np.int8)
    mem = np.array([True, False, False, True, True, False])
    assert count(g, mem) == (4, 2)


def randomized_response(m, eps0, seed):
    """Fair coins S and the mechanism's output: S as ±1, flipped with prob 1/(1 + e^eps0)."""
    rng = np.random.default_rng(seed)
    s = rng.random(m) < 0.5
    keep = rng.random(m) < math.exp(eps0) / (1 + math.exp(eps0))
    return np.where(s == keep, 1.0, -1.0), s


def rr_eps(m, eps0, seed):
    scores, s = randomized_response(m, eps0, seed)
    r, v = count(guesses(scores, m // 2, m // 2, seed=seed), s)
    assert r == m
    return eps_lower(r, v, m, 0.0, 0.05)


def test_randomized_response_without_leak_gives_zero():
    eps = [rr_eps(1000, 0.0, seed) for seed in range(200)]
    assert sum(e == 0.0 for e in eps) >= 0.95 * 200


def test_randomized_response_at_eps2_is_nearly_tight():
    # 25 seeds: at r = 1e5 eps_lower has sd ~0.01 (binomial), so the median of 25 is
    # determined far more finely than the 0.2 margin to eps0
    eps = [rr_eps(100_000, 2.0, seed) for seed in range(25)]
    assert np.median(eps) >= 1.8
    assert max(eps) < 2.0 + 0.05  # never far above the truth


def test_resolve_k_and_grid():
    assert resolve_k(0.1, 1500, "k") == 150 and resolve_k(7, 1500, "k") == 7
    assert resolve_k(0, 1500, "k") == 0
    for bad in (-1, 1.5, 2000, "x", True):
        with pytest.raises(ValueError, match="audit.one_run.k_pos"):
            resolve_k(bad, 1500, "audit.one_run.k_pos")
    grid = k_grid([0, 0.1, 0.5], 10)
    assert grid == [(0, 1), (0, 5), (1, 0), (1, 1), (1, 5), (5, 0), (5, 1), (5, 5)]


def pseudo_set(n_pseudo, m, eps0, seed):
    scores, members = zip(*(randomized_response(m, eps0, seed + p) for p in range(n_pseudo)))
    return np.stack(scores), np.stack(members)


def test_choose_k_maximises_the_median_over_pseudo_targets():
    scores, members = pseudo_set(5, 400, 2.0, 0)
    grid = [(10, 10), (100, 100), (200, 200)]
    sel = choose_k(
        scores, members, [0, 1, 2, 3, 4], [8, 9], grid=grid, m=400, delta=0.0, beta=0.05, seed=0
    )
    eps = {}
    for k in grid:
        vals = []
        for s, mem in zip(scores, members):
            r, v = count(guesses(s, *k, seed=0), mem)
            vals.append(eps_lower(r, v, 400, 0.0, 0.05))
        eps[k] = float(np.median(vals))
    best = max(eps, key=eps.get)
    assert (sel.k_pos, sel.k_neg) == best and sel.median_eps == pytest.approx(eps[best])
    assert sel.n_pseudo == 5 and sel.how == "shadows"


def test_a_search_on_the_target_is_refused():
    scores, members = pseudo_set(3, 100, 1.0, 0)
    with pytest.raises(ValueError, match="refused.*target row\\(s\\) \\[8\\]"):
        choose_k(
            scores, members, [0, 8, 2], [8, 9], grid=[(5, 5)], m=100, delta=0.0, beta=0.05, seed=0
        )
    cfg = {"k_pos": None, "k_neg": None, "grid": [0.1], "delta": 0.0, "beta": 0.05, "seed": 0}
    pseudo = {"a": {"scores": scores, "is_member": members, "shadows": np.array([0, 1, 9])}}
    with pytest.raises(ValueError, match="refused"):
        select_all(pseudo, [9], cfg, m=100, delta=0.0)
    with pytest.raises(ValueError, match="audit.one_run: set both"):
        select_all(pseudo, [5], {**cfg, "k_pos": 3}, m=100, delta=0.0)


def test_fixed_k_and_the_headline_attack_chosen_on_the_shadows():
    strong, strong_m = pseudo_set(4, 200, 3.0, 0)
    weak, weak_m = pseudo_set(4, 200, 0.2, 10)
    rows = np.array([0, 1, 2, 3])
    pseudo = {
        "weak": {"scores": weak, "is_member": weak_m, "shadows": rows},
        "strong": {"scores": strong, "is_member": strong_m, "shadows": rows},
    }
    cfg = {"k_pos": 0.25, "k_neg": 30, "grid": [0.1], "delta": 0.0, "beta": 0.05, "seed": 0}
    sel = select_all(pseudo, [4, 5], cfg, m=200, delta=0.0)
    assert {(s.k_pos, s.k_neg, s.how) for s in sel.values()} == {(50, 30, "fixed")}
    assert choose_attack(sel) == "strong"
    tie = {"a": Selection(1, 1, 0.5, 3, "shadows"), "b": Selection(1, 1, 0.5, 3, "shadows")}
    assert choose_attack(tie) == "a"


def test_an_attack_without_scores_gets_no_selection_and_a_note():
    """All-NaN pseudo-target scores (online LiRA with two shadows, the CIFAR rehearsal) stopped
    the whole one_run step; now that attack alone is left without a bound."""
    good, good_m = pseudo_set(4, 200, 3.0, 0)
    rows = np.array([0, 1, 2, 3])
    pseudo = {
        "empty": {"scores": np.full_like(good, np.nan), "is_member": good_m, "shadows": rows},
        "good": {"scores": good, "is_member": good_m, "shadows": rows},
    }
    cfg = {"k_pos": None, "k_neg": None, "grid": [0.1], "delta": 0.0, "beta": 0.05, "seed": 0}
    sel = select_all(pseudo, [4, 5], cfg, m=200, delta=0.0)
    assert set(sel) == {"good"}
    scores = {"empty": np.full((1, 200), np.nan), "good": good[:1]}
    df = one_run_table(
        scores, good_m[:1], ["4"], [""], sel, m=200, delta=0.0, beta=0.05, seed=0,
        claimed_eps=[0.0],
    )  # fmt: skip
    empty, ok = df[df.attack == "empty"].iloc[0], df[df.attack == "good"].iloc[0]
    assert np.isnan(empty.eps_lower) and "fits this attack's pseudo-target scores" in empty.note
    assert ok.eps_lower > 0 and ok.selection.endswith(HEADLINE)


def table(is_member, notes=("", "")):
    rng = np.random.default_rng(3)
    leak = np.where(is_member, 1.0, 0.0) + rng.normal(0, 0.5, is_member.shape)
    scores = {"leaky": leak, "noise": rng.normal(size=is_member.shape)}
    sel = {
        "leaky": Selection(20, 20, 1.0, 4, "shadows"),
        "noise": Selection(5, 0, 0.1, 4, "shadows"),
    }
    return one_run_table(
        scores,
        is_member,
        ["8", "18"],
        list(notes),
        sel,
        m=200,
        delta=1e-5,
        beta=0.05,
        seed=0,
        claimed_eps=[0.0, 0.0],
    )


def test_table_columns_and_values():
    mem = np.random.default_rng(1).random((2, 200)) < 0.5
    df = table(mem)
    assert tuple(df.columns) == ONE_RUN_COLUMNS and len(df) == 4
    leaky = df[df.attack == "leaky"]
    assert (leaky.r == 40).all() and (leaky.eps_lower > 0.5).all()
    assert leaky.selection.str.endswith(HEADLINE).all()
    assert df[df.attack == "noise"].selection.str.endswith(INDIVIDUAL).all()
    for row in df.itertuples():
        assert row.eps_lower == eps_lower(int(row.r), int(row.v), 200, 1e-5, 0.05)
        assert row.p_value == p_value(0.0, int(row.r), int(row.v), 200, 1e-5)
    md = headline_markdown(df)
    assert "| 8 |" in md and "`leaky`" in md and "20 / 20" in md


def test_permuting_target_labels_changes_only_v():
    mem = np.random.default_rng(1).random((2, 200)) < 0.5
    perm = np.stack([np.random.default_rng(9).permutation(row) for row in mem])
    a, b = table(mem), table(perm)
    same = ["attack", "target", "m", "k_pos", "k_neg", "r", "delta", "beta", "selection", "note"]
    assert a[same].equals(b[same])
    assert (a.v != b.v).any()


def test_non_qualifying_targets_get_nan_and_the_reason():
    assert not_qualifying("mask", pkeep=0.5) == ""
    assert not_qualifying("dp", pkeep=0.5, dp_mask="fresh") == ""
    reasons = {
        "size": not_qualifying("size", pkeep=0.5),
        "paper": not_qualifying("dp", pkeep=0.5, dp_mask="paper"),
        "imported": not_qualifying("mask", pkeep=0.5, imported=True),
        "fz": not_qualifying("mask", pkeep=0.7, imported=True, fz=True),
        "pkeep": not_qualifying("mask", pkeep=0.7),
        "dp pkeep": not_qualifying("dp", pkeep=0.3),
    }
    assert "exactly m members" in reasons["size"]
    assert "shadow 0" in reasons["paper"] and "imported" in reasons["imported"]
    assert "Feldman & Zhang" in reasons["fz"] and "pkeep = 0.7" in reasons["pkeep"]
    assert "pkeep = 0.3" in reasons["dp pkeep"]
    mem = np.random.default_rng(1).random((2, 200)) < 0.5
    df = table(mem, notes=("", reasons["pkeep"]))
    bad = df[df.target == "18"]
    assert bad.eps_lower.isna().all() and bad.r.isna().all() and bad.v.isna().all()
    assert (bad.note == reasons["pkeep"]).all()
    assert df[df.target == "8"].eps_lower.notna().all()
    assert reasons["pkeep"] in headline_markdown(df)


def test_sweep_figure_is_written(tmp_path):
    from curvmia.one_run_plots import plot_eps_vs_accountant

    mem = np.random.default_rng(1).random((2, 200)) < 0.5
    df = table(mem)
    out = tmp_path / "f.png"
    plot_eps_vs_accountant(df, {"8": 1.0, "18": 8.0}, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_choose_k_with_delta_and_nan_scores_equals_the_exhaustive_search():
    scores, members = pseudo_set(6, 300, 1.0, 5)
    scores[0, :40] = np.nan  # this pseudo-target cannot make 280 guesses
    grid = k_grid([0, 0.02, 0.1, 0.3, 0.5], 300)
    kw = {"m": 300, "delta": 1e-3, "beta": 0.05, "seed": 4}
    sel = choose_k(scores, members, list(range(6)), [], grid=grid, **kw)
    medians = []
    for k in grid:
        vals = []
        for s, mem in zip(scores, members):
            if (~np.isnan(s)).sum() >= sum(k):
                r, v = count(guesses(s, *k, seed=4), mem)
                vals.append(eps_lower(r, v, 300, 1e-3, 0.05))
        medians.append(float(np.median(vals)))
    i = int(np.argmax(medians))  # the first of equal maxima, as choose_k's tie rule
    assert (sel.k_pos, sel.k_neg) == grid[i] and sel.median_eps == medians[i]
    assert sel.n_pseudo == (6 if sum(grid[i]) <= 260 else 5)


def test_the_headline_html_shows_each_targets_bound_read_back_from_the_csv(tmp_path):
    """one_run.csv as the workflow writes it, read back the way the metrics step does."""
    from curvmia.table1 import headline_html

    mem = np.random.default_rng(1).random((2, 200)) < 0.5
    df = table(mem)
    df.to_csv(tmp_path / "one_run.csv", index=False)
    back = pd.read_csv(tmp_path / "one_run.csv").fillna({"note": "", "selection": ""})
    html = headline_html(
        "| a | b |\n|---|---|\n| 1 | 2 |\n", "facts", one_run_md=headline_markdown(back)
    )
    section = html.split('<table id="one-run">')[1].split("</table>")[0]
    for row in df[df.attack == "leaky"].itertuples():
        assert f"{row.eps_lower:.3f} (95%)" in section, section
    assert section.count("<tr>") == 1 + df.target.nunique(), section
