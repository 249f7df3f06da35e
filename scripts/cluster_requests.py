"""Write the table of what each job requests (docs/cluster.md) from the shipped configs' plans
(or check that it is current): curvmia/cluster_requests.py."""

import argparse
from pathlib import Path

from curvmia.cluster_requests import CONFIGS, DOC, generate, render
from curvmia.io import write_generated


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(DOC), help="the page holding the table")
    ap.add_argument(
        "--check", action="store_true", help="exit 1 if the page differs instead of writing it"
    )
    a = ap.parse_args()
    out = Path(a.out).resolve()  # (planning changes the working directory)
    old = out.read_text(encoding="utf-8")
    text = render(old, generate(CONFIGS))
    write_generated(out, text, "python scripts/cluster_requests.py", a.check)


if __name__ == "__main__":
    main()
