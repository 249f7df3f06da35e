"""Fetch the verified archive of a CIFAR dataset (official URL, mirror or a given file)."""

import argparse

from curvmia.cifar import CIFAR, expected_md5, fetch_archive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, choices=sorted(CIFAR))
    ap.add_argument("--mirror", default="", help="local directory or base URL ('' = official)")
    ap.add_argument("--archive", default="", help="an already-downloaded archive ('' = none)")
    ap.add_argument(
        "--md5", default="", help="the archive's expected md5, config data.md5 ('' = official)"
    )
    ap.add_argument("--retries", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    path = fetch_archive(
        a.dataset,
        a.out,
        mirror=a.mirror or None,
        archive=a.archive or None,
        md5=a.md5 or None,
        retries=a.retries,
        log=lambda s: print(s, flush=True),
    )
    print(f"{path}: md5 {expected_md5(a.dataset, a.md5 or None)} verified")


if __name__ == "__main__":
    main()
