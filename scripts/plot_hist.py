"""Histogram of log ZO curvature of members vs non-members of one target."""

import argparse

from curvmia.io import atomic_path, load_npz
from curvmia.report_figures import plot_curv_hist
from curvmia.scorefile import load_score_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--masks", required=True)
    ap.add_argument("--scores", required=True, help="score file of the target")
    ap.add_argument("--row", type=int, required=True, help="mask row of the target")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    member = load_npz(a.masks)["masks"][a.row]
    curv = load_score_file(a.scores, expect={"row": a.row})["curv_zo"][:, 0]
    with atomic_path(a.out, suffix=".png") as tmp:
        plot_curv_hist(curv, member, str(tmp), title=f"target model {a.row}")


if __name__ == "__main__":
    main()
