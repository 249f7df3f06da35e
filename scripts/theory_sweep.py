"""Theory comparison over a DP or dataset-size sweep: per-target table, figure, note."""

import argparse
import json

from curvmia.io import atomic_path, write_text
from curvmia.theory import analyse_sweep, sweep_note
from curvmia.theory_plots import plot_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sweep", required=True, choices=["dp", "size"])
    ap.add_argument("--theory", required=True, help="theory config section as JSON")
    ap.add_argument("--targets", required=True, help="the sweep's targets.csv")
    ap.add_argument("--metrics", required=True, help="the sweep's metrics.csv")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--fit", required=True, help="fit (dp) or crossover (size) summary, JSON")
    ap.add_argument("--note", required=True)
    ap.add_argument("--fig", required=True)
    a = ap.parse_args()
    cfg = json.loads(a.theory)
    res = analyse_sweep(a.targets, a.metrics, a.sweep, cfg)
    with atomic_path(a.csv, suffix=".csv") as tmp:
        res["frame"].to_csv(tmp, index=False)
    if a.sweep == "dp":
        summary = {**res["fit"].summary(), "residuals": res["fit"].residuals.tolist()}
    else:
        summary = {"crossover_m": res["crossover"], "note": res["crossover_note"],
                   "auroc": res["auroc"].to_dict(orient="list")}  # fmt: skip
    write_text(a.fit, json.dumps(summary, indent=2, allow_nan=True) + "\n")
    note = sweep_note(res, cfg)
    write_text(a.note, note)
    with atomic_path(a.fig, suffix=".png") as tmp:
        plot_sweep(res, cfg, str(tmp))
    print(note)


if __name__ == "__main__":
    main()
