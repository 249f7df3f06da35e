"""Write results/<experiment>/provenance.json (curvmia.provenance.collect)."""

import argparse
import json

from curvmia.io import write_json
from curvmia.provenance import collect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--info", required=True, help="JSON: config, commit, images, threads")
    ap.add_argument("--out", required=True)
    ap.add_argument("checkpoints", nargs="*")
    a = ap.parse_args()
    info = json.loads(a.info)
    record = collect(
        info["config"],
        commit=info["commit"],
        images=info["images"],
        checkpoints=a.checkpoints,
        threads=info["threads"],
    )
    write_json(a.out, record)
    print(json.dumps({k: record[k] for k in ("git_commit", "config_hash", "container_images")}))


if __name__ == "__main__":
    main()
