"""Per-example results: every target's per-sample score and exposure for every attack
(one tidy file), the vulnerability ranking across targets, the most exposed images."""

import argparse
from pathlib import Path

import pandas as pd

from curvmia.data import load_prepared
from curvmia.exposure import per_example_frame, vulnerability_frame, with_flags
from curvmia.io import atomic_path, load_npz
from curvmia.report_figures import plot_exposed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset (manifest.json)")
    ap.add_argument("--rank-attack", required=True, help="attack label that ranks the samples")
    ap.add_argument("--top-k", type=int, required=True)
    ap.add_argument("--tidy", required=True, help="per-example output (.csv.gz)")
    ap.add_argument("--ranking", required=True, help="vulnerability ranking (.csv)")
    ap.add_argument("--figure", required=True, help="most exposed images (.png)")
    ap.add_argument("--flags", help="per-sample flag counts of the realistic audit (.csv)")
    ap.add_argument("attacks", nargs="+", help="attack result files <label>.npz")
    a = ap.parse_args()
    data = load_prepared(a.data)
    results = {Path(p).stem: load_npz(p) for p in a.attacks}
    if a.rank_attack not in results:
        raise SystemExit(f"report.rank_attack: {a.rank_attack!r} is not one of {sorted(results)}")
    tidy = per_example_frame(results, data.train_labels)
    with atomic_path(a.tidy, suffix=".csv.gz") as tmp:
        tidy.to_csv(tmp, index=False, compression="gzip")
    vuln = vulnerability_frame(tidy, a.rank_attack)
    if a.flags:
        vuln = with_flags(vuln, pd.read_csv(a.flags))
    with atomic_path(a.ranking, suffix=".csv") as tmp:
        vuln.to_csv(tmp, index=False)
    with atomic_path(a.figure, suffix=".png") as tmp:
        plot_exposed(data.train_images, vuln, str(tmp), top_k=a.top_k, rank_label=a.rank_attack)
    print(vuln.head(a.top_k).to_string(index=False))


if __name__ == "__main__":
    main()
