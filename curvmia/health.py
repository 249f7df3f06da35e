"""Model health: each model's train and test accuracy against the health floor, which shadows
the attacks leave out, and which targets are flagged."""

from __future__ import annotations

import pandas as pd

from .attacks import healthy_shadows


def health_frame(
    models: pd.DataFrame, *, min_test_acc: float, action: str
) -> tuple[pd.DataFrame, list[int]]:
    """Model table with ``passes_floor`` and ``used`` columns; returns it and the
    excluded shadow rows.  ``action="fail"`` raises on a shadow below the floor.
    A target below the floor is attacked anyway and flagged in ``note``."""
    df = models.sort_values("row").reset_index(drop=True).copy()
    shadows = [int(r) for r in df.loc[df.role == "shadow", "row"]]
    acc = {int(r): float(a) for r, a in zip(df.row, df.test_acc)}
    _, excluded = healthy_shadows(shadows, acc, min_test_acc, action)
    df["passes_floor"] = df.test_acc >= min_test_acc
    df["used"] = ~df.row.isin(excluded)
    df["note"] = ""
    df.loc[df.row.isin(excluded), "note"] = f"shadow excluded: test accuracy < {min_test_acc}"
    low_target = (df.role == "target") & ~df.passes_floor
    df.loc[low_target, "note"] = f"target below the floor {min_test_acc}: attacked, flagged"
    return df, excluded


def health_markdown(health: pd.DataFrame, min_test_acc: float) -> str:
    """Per-model train/test accuracy and what the health floor did."""
    lines = [
        "| row | role | train acc. % | test acc. % | used | note |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in health.iterrows():
        lines.append(
            f"| {int(r.row)} | {r.role} | {100 * r.train_acc:.2f} | {100 * r.test_acc:.2f} | "
            f"{'yes' if r.used else 'no'} | {r.note or ''} |"
        )
    excl = health[~health.used]
    lines += [
        "",
        f"Test-accuracy floor {min_test_acc}: {len(excl)} shadow(s) excluded"
        + (f" (rows {', '.join(str(int(r)) for r in excl.row)})" if len(excl) else "")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def kept_positions(health_csv: str, rows: list[int]) -> tuple[list[int], set[int]]:
    """Positions in ``rows`` of the models health.csv marks used, and the rows it excluded
    (``used`` False): the attacks, the sweeps and leave-one-out drop those models."""
    health = pd.read_csv(health_csv)
    unused = set(health.loc[~health.used, "row"].astype(int))
    return [i for i, r in enumerate(rows) if r not in unused], unused
