"""The one-run ε lower bound of every attack on every target (docs/method.md: One-run ε
lower bound): one_run.csv and one_run.md.  (k_pos, k_neg) and the headline attack are
chosen on the shadows as pseudo-targets (pseudo/<label>.npz), never on a target's labels."""

import argparse
import json
from pathlib import Path

import numpy as np

from curvmia.io import atomic_path, load_npz, write_text
from curvmia.one_run_audit import not_qualifying, one_run_markdown, one_run_table, select_all


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--audit", required=True, help="audit.one_run config section as JSON")
    ap.add_argument(
        "--layout",
        required=True,
        help="JSON: pkeep (masks.pkeep), imported (imported target rows), fz (bool)",
    )
    ap.add_argument("--pseudo", nargs="+", required=True, help="pseudo/<label>.npz files")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("attacks", nargs="+", help="attack result files attacks/<label>.npz")
    return ap.parse_args()


def target_notes(rows: list[int], layout: dict) -> list[str]:
    """Per target row, why it does not qualify ("" if it does)."""
    imported = set(layout["imported"])
    return [
        not_qualifying("mask", pkeep=layout["pkeep"], imported=r in imported, fz=layout["fz"])
        for r in rows
    ]


def load_attacks(paths: list[str]) -> tuple[dict[str, dict], list[int]]:
    """Every attack file by label, and the target rows (the same in each, else an error)."""
    attacks = {Path(p).stem: load_npz(p) for p in paths}
    rows = [int(t) for t in next(iter(attacks.values()))["targets"]]
    for label, res in attacks.items():
        if [int(t) for t in res["targets"]] != rows:
            raise SystemExit(f"attacks/{label}.npz: targets {res['targets']} differ from {rows}")
    return attacks, rows


def main() -> None:
    a = parse_args()
    cfg, layout = json.loads(a.audit), json.loads(a.layout)
    attacks, rows = load_attacks(a.attacks)
    pseudo = {Path(p).stem: load_npz(p) for p in a.pseudo}
    if set(pseudo) != set(attacks):
        raise SystemExit(f"--pseudo labels {sorted(pseudo)} differ from {sorted(attacks)}")
    notes = target_notes(rows, layout)
    first = next(iter(attacks.values()))
    m = int(first["scores"].shape[1])
    qualify = any(not n for n in notes)
    sel = select_all(pseudo, rows, cfg, m=m, delta=cfg["delta"]) if qualify else {}
    df = one_run_table(
        {label: res["scores"] for label, res in attacks.items()},
        np.asarray(first["is_member"], dtype=bool),
        [str(r) for r in rows],
        notes,
        sel,
        m=m,
        delta=cfg["delta"],
        beta=cfg["beta"],
        seed=cfg["seed"],
        claimed_eps=[0.0] * len(rows),
    )
    with atomic_path(a.csv, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    write_text(a.md, one_run_markdown(df, "One-run ε lower bounds of the targets"))
    print(df[["attack", "target", "k_pos", "k_neg", "r", "v", "eps_lower"]].to_string())


if __name__ == "__main__":
    main()
