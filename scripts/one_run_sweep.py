"""The one-run ε lower bound of every attack on every DP-sweep target (docs/method.md:
One-run ε lower bound): sweeps/dp/one_run.csv and the figure of ε̂ against the accountant's
ε.  (k_pos, k_neg) and the headline attack are chosen on the main experiment's shadows as
pseudo-targets; δ is the DP targets' own."""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from curvmia.io import atomic_path, load_npz
from curvmia.one_run_audit import not_qualifying, one_run_table, select_all
from curvmia.one_run_plots import plot_eps_vs_accountant
from curvmia.report_figures import plot_text


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--audit", required=True, help="audit.one_run config section as JSON")
    ap.add_argument(
        "--dp", required=True, help="JSON: delta (dp_sweep.train.delta), mask, pkeep (masks)"
    )
    ap.add_argument("--targets", required=True, help="sweeps/dp/targets.csv")
    ap.add_argument("--scores", required=True, help="sweeps/dp/attacks.npz")
    ap.add_argument("--pseudo", nargs="+", required=True, help="pseudo/<label>.npz files")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--fig", required=True)
    return ap.parse_args()


def main() -> None:
    a = parse_args()
    cfg, dp = json.loads(a.audit), json.loads(a.dp)
    sw = load_npz(a.scores)
    claimed = pd.read_csv(a.targets, dtype={"model": str}).set_index("model")["value"]
    ids = [str(t) for t in sw["targets"]]
    pseudo = {Path(p).stem: load_npz(p) for p in a.pseudo}
    labels = [str(label) for label in sw["labels"]]
    if set(pseudo) != set(labels):
        raise SystemExit(f"--pseudo labels {sorted(pseudo)} differ from {a.scores}'s {labels}")
    note = not_qualifying("dp", pkeep=dp["pkeep"], dp_mask=dp["mask"])
    m = int(sw["scores"].shape[2])
    sel = {} if note else select_all(pseudo, [], cfg, m=m, delta=dp["delta"])
    df = one_run_table(
        dict(zip(labels, sw["scores"])),
        np.asarray(sw["is_member"], dtype=bool),
        ids,
        [note] * len(ids),
        sel,
        m=m,
        delta=dp["delta"],
        beta=cfg["beta"],
        seed=cfg["seed"],
        claimed_eps=[float(claimed[t]) for t in ids],
    )
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    if note:
        plot_text(a.fig, f"No one-run bound for the DP sweep: {note}")
    else:
        plot_eps_vs_accountant(df, {t: float(claimed[t]) for t in ids}, a.fig)
    print(df[["attack", "target", "k_pos", "k_neg", "r", "v", "eps_lower", "p_value"]].to_string())


if __name__ == "__main__":
    main()
