"""Leave-one-out (docs/method.md: Membership layouts): every model in turn as the target, the
others as its shadows; the metrics of every attack and their markdown table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .attacks import ATTACKS, coverage, spec_label
from .masks import complement_of
from .metrics import summarize
from .report_tables import pct_cell


def loo_layouts(rows: list[int], n_random: int, complements: bool) -> list[tuple[int, list[int]]]:
    """Leave-one-out (docs/method.md: Membership layouts): each model as target, the others minus
    its complement as
    shadows."""
    out = []
    for t in rows:
        c = complement_of(t, n_random, complements)
        out.append((t, [r for r in rows if r not in (t, c)]))
    return out


def loo_frame(
    specs: list[dict],
    feats: dict[str, np.ndarray],
    masks: np.ndarray,
    layouts: list[tuple[int, list[int]]],
    labels: np.ndarray,
    *,
    fprs: list[float],
) -> pd.DataFrame:
    """Metrics (no bootstrap) of every attack with every model as target.

    ``feats`` maps feature names to (M, N, Q) arrays over the models of ``layouts``
    in the order of ``sorted(rows)``; ``masks`` is the full mask set."""
    rows_sorted = sorted({t for t, _ in layouts} | {r for _, s in layouts for r in s})
    pos = {r: i for i, r in enumerate(rows_sorted)}
    out = []
    for t, shadows in layouts:
        tf = {f: v[pos[t]] for f, v in feats.items()}
        sf = {f: v[[pos[r] for r in shadows]] for f, v in feats.items()}
        s_in = masks[shadows]
        cov = coverage(s_in)
        for spec in specs:
            params = {k: v for k, v in spec.items() if k not in ("name", "label")}
            score = ATTACKS[spec["name"]](tf, sf, s_in, labels=labels, **params)
            m = summarize(score, masks[t], fprs=fprs, n_boot=0, seed=0)
            out.append(
                {"attack": spec_label(spec), "target": t, "n_shadows": len(shadows), **cov, **m}
            )
    return pd.DataFrame(out)


def loo_markdown(loo: pd.DataFrame, fixed: pd.DataFrame | None = None) -> str:
    """Leave-one-out AUROC (mean ± std over all models) beside the fixed targets'."""
    g = loo.groupby("attack", sort=False)["auroc"]
    bal = loo.groupby("attack", sort=False)["bal_acc_paper"]
    n = loo.target.nunique()
    head = f"| attack | leave-one-out AUROC % ({n} targets) | LOO bal. acc. % |"
    rule = "|---|---|---|"
    if fixed is not None:
        head += " fixed targets AUROC % |"
        rule += "---|"
    lines = [head, rule]
    for label, vals in g:
        line = f"| {label} | {pct_cell(vals.mean(), vals.std(ddof=0))} | "
        b = bal.get_group(label)
        line += f"{pct_cell(b.mean(), b.std(ddof=0))} |"
        if fixed is not None:
            f = fixed[fixed.attack == label].set_index("target")
            line += (
                f" {pct_cell(f.loc['mean', 'auroc'], f.loc['std', 'auroc'])} |"
                if "mean" in f.index
                else " – |"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"
