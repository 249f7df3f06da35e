"""Write docs/configuration.md from config/schema.yaml (or check that it is current)."""

import argparse
from pathlib import Path

from curvmia.io import write_generated
from curvmia.schema_doc import render_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--schema", default="config/schema.yaml", help="the config schema")
    ap.add_argument("--out", default="docs/configuration.md", help="the page to write")
    ap.add_argument(
        "--check", action="store_true", help="exit 1 if the page differs instead of writing it"
    )
    a = ap.parse_args()
    text = render_file(a.schema)
    out = Path(a.out)
    write_generated(out, text, "python scripts/schema_doc.py", a.check)


if __name__ == "__main__":
    main()
