"""Archive a finished run for rerunning elsewhere (curvmia.archive; docs/reproducibility.md).

Example: python scripts/archive.py --out digits-archive.tar.gz
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curvmia.archive import build_archive  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="archive to write (.tar.gz)")
    ap.add_argument("--workdir", default=".", help="working directory of the run")
    ap.add_argument("--configfile", action="append", default=[], help="config file(s) of the run")
    a = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    manifest = build_archive(a.out, repo, a.workdir, a.configfile)
    print(json.dumps({k: v for k, v in manifest.items() if k != "sha256"}, indent=2))
    print(f"{len(manifest['sha256'])} files -> {a.out}")


if __name__ == "__main__":
    main()
