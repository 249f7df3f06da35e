"""Write the conda environment files (envs/*.yaml) from their hash locks, or check them.

Each file lists its lock's entries with their hashes (curvmia/condaenv.py says why);
`make lock` runs this after locking.
"""

import argparse
import sys
from pathlib import Path

from curvmia.condaenv import CONDA_ENVS, LockError, stale, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=".", help="the repository root")
    ap.add_argument(
        "--check", action="store_true", help="exit 1 if a file differs instead of writing it"
    )
    a = ap.parse_args()
    root = Path(a.root)
    try:
        if a.check:
            old = stale(root)
            if old:
                sys.exit(
                    f"stale: {', '.join(old)} (not what their locks generate): run "
                    "`make conda-envs` (python scripts/conda_env.py)"
                )
            return
        changed = write(root)
    except LockError as e:
        sys.exit(f"{e}")
    for env in CONDA_ENVS:
        print(f"{'wrote' if env.path in changed else 'unchanged'} {env.path} <- {env.lock}")


if __name__ == "__main__":
    main()
