"""The one-run ε lower bound applied to the workflow's targets (docs/method.md: One-run ε
lower bound): which targets qualify, the choice of (k₊, k₋) and of the headline attack on
the shadows as pseudo-targets (never on a target's labels), and the one_run.csv table.

Every choice is made before a target's membership is read: :func:`choose_k` and
:func:`choose_attack` take the pseudo-targets only, and the target's labels enter
:func:`one_run_table` once, to count v.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .one_run import count, eps_lower, guesses, p_value, ranking

ONE_RUN_COLUMNS = (
    "attack",
    "target",
    "m",
    "k_pos",
    "k_neg",
    "r",
    "v",
    "delta",
    "beta",
    "eps_lower",
    "p_value",
    "selection",
    "note",
)
HEADLINE = "headline attack (chosen on the shadows)"
INDIVIDUAL = "individual bound (not chosen on the shadows)"
REFUSED = (
    "refused: (k_pos, k_neg) or the attack would be chosen on the labels of target row(s) {rows}. "
    "The largest eps_lower over choices made on the target is not a (1 - beta) bound: each "
    "choice fails with probability up to beta, and the maximum of many fails more often. "
    "Choose on the shadows (audit.one_run.k_pos/k_neg: null) or fix k_pos and k_neg in the "
    "config (docs/method.md: One-run ε lower bound)."
)


def resolve_k(value: float | int, m: int, key: str) -> int:
    """A count (an integer ≥ 0) or a fraction of m (a number in (0, 1)) as a count."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key}: expected a count >= 0 or a fraction in (0, 1), got {value!r}")
    if value < 1:
        return int(round(value * m))
    if value != int(value) or value > m:
        raise ValueError(f"{key}: {value} is neither a fraction in (0, 1) nor a count <= m = {m}")
    return int(value)


def k_grid(grid: list[float], m: int) -> list[tuple[int, int]]:
    """The (k₊, k₋) pairs searched on the pseudo-targets: every pair of grid values (counts
    or fractions of m), without (0, 0) and pairs of more than m guesses."""
    ks = sorted({resolve_k(g, m, "audit.one_run.grid") for g in grid})
    return [(a, b) for a in ks for b in ks if 0 < a + b <= m]


@dataclass(frozen=True)
class Selection:
    """(k₊, k₋) for one attack and the median ε̂ of the pseudo-targets there."""

    k_pos: int
    k_neg: int
    median_eps: float
    n_pseudo: int
    how: str  # "shadows" (searched on the grid) or "fixed" (from the config)


def pseudo_counts(
    scores: np.ndarray, is_member: np.ndarray, grid: list[tuple[int, int]], seed: int
) -> dict[tuple[int, int], list[tuple[int, int] | None]]:
    """Per (k₊, k₋) of ``grid``, each pseudo-target's (r, v) as :func:`guesses` and
    :func:`count` give it (one ranking per pseudo-target); None where it has fewer non-NaN
    scores than guesses."""
    out: dict[tuple[int, int], list[tuple[int, int] | None]] = {k: [] for k in grid}
    for s, mem in zip(scores, is_member):
        order = ranking(s, seed)
        hit = np.asarray(mem, dtype=bool)[order]
        # correct OUT guesses among the j lowest, correct IN guesses among the j highest
        low = np.concatenate([[0], np.cumsum(~hit)])
        high = np.concatenate([[0], np.cumsum(hit[::-1])])
        for k in grid:
            ok = k[0] + k[1] <= len(order)
            out[k].append((k[0] + k[1], int(high[k[0]] + low[k[1]])) if ok else None)
    return out


def check_not_target(pseudo_rows: list[int], target_rows: list[int]) -> None:
    """Refuse a selection whose pseudo-targets include an audited target (docs/method.md)."""
    both = sorted(set(map(int, pseudo_rows)) & set(map(int, target_rows)))
    if both:
        raise ValueError(REFUSED.format(rows=both))


class NoFit(ValueError):
    """No (k₊, k₋) of the grid fits an attack's pseudo-target scores (too few non-NaN)."""


def choose_k(
    pseudo_scores: np.ndarray,
    pseudo_member: np.ndarray,
    pseudo_rows: list[int],
    target_rows: list[int],
    *,
    grid: list[tuple[int, int]],
    m: int,
    delta: float,
    beta: float,
    seed: int,
) -> Selection:
    """The (k₊, k₋) of ``grid`` that maximises the median ε̂ over the pseudo-targets (the
    first such pair in grid order).  Takes no target labels: ``target_rows`` only names the
    audited rows, which must not be among the pseudo-targets (refused otherwise); a grid of
    one pair scores that fixed pair."""
    check_not_target(pseudo_rows, target_rows)
    counts = pseudo_counts(pseudo_scores, pseudo_member, grid, seed)
    cache: dict[tuple[int, int, float], float] = {}

    def median(k: tuple[int, int], d: float) -> float:
        for rv in counts[k]:
            if rv is not None and (*rv, d) not in cache:
                cache[(*rv, d)] = eps_lower(*rv, m, d, beta)
        eps = [cache[(*rv, d)] for rv in counts[k] if rv is not None]
        return float(np.median(eps)) if eps else -np.inf

    # the δ = 0 bound is at least the δ > 0 one (p only grows with δ) and costs a closed
    # form: pairs are scored in decreasing order of it, and once it falls below the best
    # exact median no later pair can win
    upper = [median(k, 0.0) for k in grid]
    best, best_i = Selection(0, 0, -np.inf, 0, "shadows"), -1
    for i in sorted(range(len(grid)), key=lambda j: -upper[j]):
        if upper[i] == -np.inf or upper[i] < best.median_eps:
            break
        med = upper[i] if delta == 0 else median(grid[i], delta)
        if med > best.median_eps or (med == best.median_eps and i < best_i):
            n = sum(rv is not None for rv in counts[grid[i]])
            best, best_i = Selection(grid[i][0], grid[i][1], med, n, "shadows"), i
    if best.median_eps == -np.inf:
        raise NoFit(
            f"audit.one_run: no (k_pos, k_neg) of {grid} fits the pseudo-targets' non-NaN scores"
        )
    return best


def select_all(
    pseudo: dict[str, dict[str, np.ndarray]],
    target_rows: list[int],
    cfg: dict,
    *,
    m: int,
    delta: float,
) -> dict[str, Selection]:
    """Per attack label, its Selection on the pseudo-targets (``pseudo[label]``: scores,
    is_member, shadows, as pseudo/<label>.npz): (k₊, k₋) fixed by ``cfg`` (the
    audit.one_run section) when both are set, else searched on cfg's grid.  An attack whose
    pseudo-target scores fit no pair (e.g. all NaN: online LiRA with two shadows) has none."""
    fixed = [cfg["k_pos"] is not None, cfg["k_neg"] is not None]
    if any(fixed) and not all(fixed):
        raise ValueError("audit.one_run: set both k_pos and k_neg (fixed) or neither (chosen)")
    if all(fixed):
        grid = [
            (
                resolve_k(cfg["k_pos"], m, "audit.one_run.k_pos"),
                resolve_k(cfg["k_neg"], m, "audit.one_run.k_neg"),
            )
        ]
    else:
        grid = k_grid(cfg["grid"], m)
    out = {}
    for label, p in pseudo.items():
        rows = [int(r) for r in p["shadows"]]
        kw = {"grid": grid, "m": m, "delta": delta, "beta": cfg["beta"], "seed": cfg["seed"]}
        try:
            sel = choose_k(p["scores"], p["is_member"], rows, target_rows, **kw)
        except NoFit:
            continue
        out[label] = replace(sel, how="fixed") if all(fixed) else sel
    return out


def choose_attack(selections: dict[str, Selection]) -> str:
    """The headline attack: the largest median ε̂ on the pseudo-targets (the first in order
    on a tie), never the largest ε̂ on a target."""
    return max(selections, key=lambda a: selections[a].median_eps)


def not_qualifying(
    kind: str,
    *,
    pkeep: float,
    imported: bool = False,
    fz: bool = False,
    dp_mask: str = "fresh",
) -> str:
    """Why a target's membership is not the theorem's independent fair coins ("" if it is).

    ``kind``: "mask" (a random or complement mask row), "dp" or "size" (sweep targets)."""
    if kind not in ("mask", "dp", "size"):
        raise ValueError(f"not_qualifying: kind must be mask, dp or size, got {kind!r}")
    if kind == "size":
        return (
            "not qualifying: a size-sweep target has exactly m members (the first of a fixed "
            "permutation), not an independent fair coin per example"
        )
    if fz:
        return (
            "not qualifying: imported from Feldman & Zhang's release (their 70% subsets, not "
            "this workflow's independent fair coins)"
        )
    if imported:
        return (
            "not qualifying: an imported model; its members were not drawn by this workflow's "
            "independent fair coins"
        )
    if kind == "dp" and dp_mask == "paper":
        return (
            "not qualifying: dp_sweep.mask: paper trains the DP target on shadow 0's mask, so "
            "the attack's references depend on the target's own coins"
        )
    if pkeep != 0.5:
        return (
            f"not qualifying: masks.pkeep = {pkeep}; the bound needs every example included "
            "with probability 1/2"
        )
    return ""


def _short_note(scores: np.ndarray, sel: Selection | None) -> str:
    if sel is None:
        return "no (k_pos, k_neg) of the grid fits this attack's pseudo-target scores (NaN)"
    n = int(np.count_nonzero(~np.isnan(scores)))
    if n < sel.k_pos + sel.k_neg:
        return f"{n} non-NaN scores, fewer than k_pos + k_neg = {sel.k_pos + sel.k_neg} guesses"
    return ""


def _row(attack: str, target: str, m: int, delta: float, beta: float, **kw) -> dict:
    nan = float("nan")
    row = dict.fromkeys(ONE_RUN_COLUMNS, nan)
    row.update(attack=attack, target=target, m=m, delta=delta, beta=beta, selection="", note="")
    row.update(kw)
    return row


def one_run_table(
    scores: dict[str, np.ndarray],
    is_member: np.ndarray,
    targets: list[str],
    notes: list[str],
    selections: dict[str, Selection],
    *,
    m: int,
    delta: float,
    beta: float,
    seed: int,
    claimed_eps: list[float],
) -> pd.DataFrame:
    """one_run.csv: every attack (``scores[label]``, (T, N)) on every target.  A qualifying
    target gets the attack's selected (k₊, k₋), its (r, v), ε̂ and p_value = p(claimed ε)
    (the p-value of "the target is (claimed ε, δ)-DP"; claimed ε = 0 for non-DP targets);
    one whose ``notes`` entry is not empty gets NaN and the note.  ``selections`` is empty
    when no target qualifies."""
    head = choose_attack(selections) if selections else None
    rows = []
    for label, sc in scores.items():
        sel = selections.get(label)
        for t, target in enumerate(targets):
            note = notes[t] or _short_note(sc[t], sel)
            if note:
                rows.append(_row(label, target, m, delta, beta, note=note))
                continue
            r, v = count(guesses(sc[t], sel.k_pos, sel.k_neg, seed), is_member[t])
            how = "fixed in audit.one_run" if sel.how == "fixed" else "chosen on the shadows"
            text = (
                f"k {how}; median eps_lower {sel.median_eps:.4f} over {sel.n_pseudo} "
                f"pseudo-targets; {HEADLINE if label == head else INDIVIDUAL}"
            )
            rows.append(
                _row(
                    label,
                    target,
                    m,
                    delta,
                    beta,
                    k_pos=sel.k_pos,
                    k_neg=sel.k_neg,
                    r=r,
                    v=v,
                    eps_lower=eps_lower(r, v, m, delta, beta),
                    p_value=p_value(claimed_eps[t], r, v, m, delta),
                    selection=text,
                )
            )
    df = pd.DataFrame(rows, columns=list(ONE_RUN_COLUMNS))
    return df.astype({c: "Int64" for c in ("m", "k_pos", "k_neg", "r", "v")})


def headline_markdown(df: pd.DataFrame) -> str:
    """The headline's one-run lines: per target, ε̂ of the attack chosen on the shadows, with
    its (k₊, k₋), (r, v) and β; or why the target does not qualify."""
    out = [
        "| target | one-run eps_lower (1 - beta) | attack (chosen on the shadows) | "
        "k_pos / k_neg | v / r |",
        "|---|---|---|---|---|",
    ]
    for target, g in df.groupby("target", sort=False):
        head = g[g["selection"].astype(str).str.endswith(HEADLINE)]
        if head.empty:
            note = str(g["note"].iloc[0]) or "no result"
            out.append(f"| {target} | — | {note} | | |")
            continue
        h = head.iloc[0]
        out.append(
            f"| {target} | {h.eps_lower:.3f} ({1 - h.beta:.0%}) | `{h.attack}` | "
            f"{int(h.k_pos)} / {int(h.k_neg)} | {int(h.v)} / {int(h.r)} |"
        )
    return "\n".join(out) + "\n"


def attacks_markdown(df: pd.DataFrame) -> str:
    """Every attack on every target: each row an individual bound (only the headline attack,
    chosen on the shadows, is the audit's answer; the largest row is not a 1 − β bound)."""
    out = [
        "| attack | target | eps_lower | p_value | k_pos / k_neg | v / r | |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in df.itertuples(index=False):
        if pd.isna(row.eps_lower):
            out.append(f"| `{row.attack}` | {row.target} | — | | | | {row.note} |")
            continue
        kind = "headline" if str(row.selection).endswith(HEADLINE) else "individual bound"
        out.append(
            f"| `{row.attack}` | {row.target} | {row.eps_lower:.3f} | {row.p_value:.3g} | "
            f"{int(row.k_pos)} / {int(row.k_neg)} | {int(row.v)} / {int(row.r)} | {kind} |"
        )
    return "\n".join(out) + "\n"


def one_run_markdown(df: pd.DataFrame, title: str) -> str:
    """one_run.md: the headline lines, then every attack as an individual bound."""
    m, delta, beta = int(df["m"].iloc[0]), float(df["delta"].iloc[0]), float(df["beta"].iloc[0])
    return "\n".join(
        [
            f"# {title}\n",
            f"m = {m} audited examples (independent fair coins), delta = {delta:g}, "
            f"beta = {beta:g}: each eps_lower holds with probability at least {1 - beta:.0%} "
            "over the coins; it is a lower bound, not an estimate (docs/method.md: One-run ε "
            "lower bound). p_value: of the hypothesis that the target is (claimed eps, "
            "delta)-DP (claimed eps = 0 for non-DP targets).\n",
            "## Per target: the attack chosen on the shadows\n",
            headline_markdown(df),
            "## Every attack (individual bounds; their maximum is not a 1 - beta bound)\n",
            attacks_markdown(df),
        ]
    )
