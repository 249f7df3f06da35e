"""The DP sweep's one-run figure: ε̂ of each DP target against the ε its accountant
guarantees (docs/method.md: One-run ε lower bound)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .one_run_audit import HEADLINE  # noqa: E402


def plot_eps_vs_accountant(df: pd.DataFrame, claimed: dict[str, float], path: str) -> None:
    """ε̂ (one_run.csv rows) against the accountant's ε (``claimed``, by target id): the
    headline attack's points, every other attack faint, and the diagonal ε̂ = ε, where a
    tight audit would lie (a point above it would contradict the accountant)."""
    d = df.assign(eps=df["target"].astype(str).map(claimed))
    head = d["selection"].astype(str).str.endswith(HEADLINE)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(
        d.loc[~head, "eps"],
        d.loc[~head, "eps_lower"],
        s=10,
        color="0.75",
        label="other attacks (individual bounds)",
    )
    labels = sorted(set(d.loc[head, "attack"]))
    ax.scatter(
        d.loc[head, "eps"],
        d.loc[head, "eps_lower"],
        s=30,
        color="C0",
        zorder=3,
        label=f"headline attack ({', '.join(labels)})",
    )
    top = float(np.nanmax(d["eps"]))
    ax.plot([0, top], [0, top], "k--", lw=1, label="eps_lower = eps (tight audit)")
    beta, delta = float(d["beta"].iloc[0]), float(d["delta"].iloc[0])
    ax.set_xlabel("accountant's epsilon (dp_sweep.epsilons)")
    ax.set_ylabel(f"one-run eps_lower ({1 - beta:.0%}, delta = {delta:g})")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("DP sweep: one-run lower bound against the guarantee", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
