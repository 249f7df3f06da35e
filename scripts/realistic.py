"""Realistic audit (docs/method.md: Realistic audit metrics): label-free thresholds from
the shadows as pseudo-targets applied to every real target (realistic.csv), the label-free
balanced-accuracy threshold (for metrics.csv), per-sample stability (stability.csv, a
per-sample count file and a figure)."""

import argparse
import json
from pathlib import Path

from curvmia.io import atomic_path, load_npz
from curvmia.realistic import realistic_frames
from curvmia.report_figures import plot_stability
from curvmia.stability import stability_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics", required=True, help="JSON: fprs, priors, bootstrap, seed")
    ap.add_argument("--pseudo", nargs="+", required=True, help="pseudo/<label>.npz files")
    ap.add_argument("--csv", required=True, help="realistic.csv")
    ap.add_argument("--bal", required=True, help="label-free balanced accuracy (.csv)")
    ap.add_argument("--stability", required=True, help="stability.csv")
    ap.add_argument("--samples", required=True, help="per-sample flag counts (.csv)")
    ap.add_argument("--figure", required=True, help="stability figure (.png)")
    ap.add_argument("attacks", nargs="+", help="attacks/<label>.npz files")
    a = ap.parse_args()
    cfg = json.loads(a.metrics)
    attacks = {Path(p).stem: load_npz(p) for p in a.attacks}
    pseudo = {Path(p).stem: load_npz(p) for p in a.pseudo}
    realistic, bal = realistic_frames(attacks, pseudo, cfg)
    pairs, samples = stability_frames(attacks, realistic)
    for df, path in ((realistic, a.csv), (bal, a.bal), (pairs, a.stability), (samples, a.samples)):
        with atomic_path(path, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
    with atomic_path(a.figure, suffix=".png") as tmp:
        plot_stability(pairs, samples, str(tmp))
    cols = ["attack", "target", "fpr_level", "threshold", "fpr", "tpr", "ppv_0.01"]
    print(realistic[[c for c in cols if c in realistic]].to_string(index=False))


if __name__ == "__main__":
    main()
