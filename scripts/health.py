"""Model health: every model's train/test accuracy and which shadows pass the floor."""

import argparse
import json

import pandas as pd

from curvmia.health import health_frame
from curvmia.io import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", required=True, help="models.csv of the model summary")
    ap.add_argument("--health", required=True, help="health config section as JSON")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = json.loads(a.health)
    try:
        df, excluded = health_frame(
            pd.read_csv(a.models), min_test_acc=cfg["min_test_acc"], action=cfg["action"]
        )
    except ValueError as e:
        raise SystemExit(f"{a.models}: {e}") from e
    with atomic_path(a.out, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    print(df.to_string(index=False))
    print(f"excluded shadows: {excluded or 'none'}")


if __name__ == "__main__":
    main()
