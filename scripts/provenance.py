"""Write results/<experiment>/provenance.json (curvmia.provenance.collect)."""

import argparse
import json

from curvmia.io import write_json
from curvmia.provenance import collect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--info", required=True, help="JSON: config, commit, images")
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", nargs="*", default=[], help="checkpoints")
    ap.add_argument("--scores", nargs="*", default=[], help="score files")
    a = ap.parse_args()
    info = json.loads(a.info)
    record = collect(
        info["config"],
        commit=info["commit"],
        images=info["images"],
        checkpoints=a.models,
        scores=a.scores,
    )
    write_json(a.out, record)
    print(json.dumps({k: record[k] for k in ("git_commit", "config_hash", "container_images")}))
    mixed = {k: v for k, v in record["mixed_compute"].items() if v}
    if mixed:
        print(f"WARNING: made with mixed compute settings: {json.dumps(mixed)}")
    if record["older_code"]:
        print(f"WARNING: made by older code (docs/reruns.md): {json.dumps(record['older_code'])}")


if __name__ == "__main__":
    main()
