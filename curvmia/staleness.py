"""Which intermediates a run must rebuild, decided by their stored identity.

Snakemake decides staleness from its own metadata (.snakemake/): when that is gone (deleted
to clear a lock, or results copied into a new clone), a changed config reruns nothing, and
a deleted or damaged intermediate whose consumers' outputs exist is not made again. The
workflow therefore also compares, while it is parsed, the identity every checkpoint and score
file stores (curvmia/identity.py) with the one the config implies, reading only their small
metadata, never the weights or score arrays. Each file is absent, damaged (its metadata
cannot be read), stale (a stored identity field differs) or good; rules/common.smk turns the
first three into jobs (docs/reruns.md: "Identity decides staleness").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .identity import CHECKPOINT_KEYS
from .io import config_hash
from .scorefile import read_score_meta


@dataclass(frozen=True)
class Finding:
    """An intermediate a run must rebuild: ``state`` absent, damaged or stale, and why."""

    path: str
    state: str
    why: str

    def line(self) -> str:
        return f"{self.path}: {self.state} ({self.why})"


def first_difference(stored: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """``"<key>: stored <x>, expected <y>"`` for the first key of ``expected`` whose stored
    value differs (a key the file lacks counts as differing), else None."""
    for key, want in expected.items():
        got = stored.get(key)
        if got != want:
            return f"{key}: stored {got!r}, expected {want!r}"
    return None


def checkpoint_finding(path: str | os.PathLike, expected: dict[str, Any]) -> Finding | None:
    """The state of a checkpoint against the identity ``expected`` of it (None: good)."""
    path = str(path)
    if not os.path.exists(path):
        return Finding(path, "absent", "missing")
    from .checkpoint import read_checkpoint_meta  # torch: the submitting process only

    try:
        meta = read_checkpoint_meta(path)
    except ValueError as e:
        return Finding(path, "damaged", str(e).removeprefix(f"{path}: "))
    why = first_difference(meta, expected)
    return Finding(path, "stale", why) if why else None


def stored_score_identity(meta: dict[str, Any], knobs: tuple[str, ...]) -> dict[str, Any]:
    """The identity a score file's ``meta`` records: its ``identity`` record, or, for a file
    written before score files carried one, its row and the hash of its scoring settings
    less the compute ``knobs`` (the checkpoint's hashes are unknown there and not compared)."""
    if isinstance(meta.get("identity"), dict):
        return meta["identity"]
    out = {"row": meta.get("row")} if "row" in meta else {}
    if isinstance(meta.get("scoring"), dict):
        scoring = {k: v for k, v in meta["scoring"].items() if k not in knobs}
        out["scoring_hash"] = config_hash(scoring)
    return out


def score_finding(
    path: str | os.PathLike, expected: dict[str, Any], knobs: tuple[str, ...] = ()
) -> Finding | None:
    """The state of a score file against the identity ``expected`` of it (None: good). A
    file written before score files carried an identity is compared on what it records."""
    path = str(path)
    if not os.path.exists(path):
        return Finding(path, "absent", "missing")
    try:
        meta = read_score_meta(path)
    except ValueError as e:
        return Finding(path, "damaged", str(e).removeprefix(f"{path}: "))
    stored = stored_score_identity(meta, knobs)
    if "identity" not in meta:
        expected = {k: v for k, v in expected.items() if k in stored or k == "row"}
    why = first_difference(stored, expected)
    return Finding(path, "stale", why) if why else None


def score_expected(checkpoint_expected: dict[str, Any], scoring: dict[str, Any]) -> dict:
    """The identity a score file must carry: its checkpoint's plus the scoring hash (as
    curvmia.identity.score_identity builds it)."""
    ident = {k: checkpoint_expected[k] for k in CHECKPOINT_KEYS if k in checkpoint_expected}
    return {**ident, "scoring_hash": config_hash(scoring)}


def marker_path(path: str) -> str:
    """Where the reason a file must be rebuilt is written: an input of its producer, newer
    than the file, so that Snakemake reruns the producer (and, through it, its consumers)."""
    return os.path.join(".snakemake", "curvmia-stale", f"{path}.why")


def mark(findings: list[Finding], checked: list[str]) -> None:
    """Write the marker of every damaged or stale file (fresh, so newer than the file) and
    remove those of the ``checked`` files that are no longer damaged or stale."""
    flagged = {f.path: f for f in findings if f.state != "absent"}
    for path in checked:
        marker = marker_path(path)
        if path in flagged:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            with open(marker, "w") as fh:
                fh.write(flagged[path].line() + "\n")
        elif os.path.exists(marker):
            os.remove(marker)


def summary(findings: list[Finding]) -> str:
    """One warning naming every damaged or stale file and why (absent ones are plain)."""
    shown = [f for f in findings if f.state != "absent"]
    if not shown:
        return ""
    lines = "\n".join(f"  {f.line()}" for f in shown)
    return (
        f"curvmia: {len(shown)} intermediate(s) differ from what the config implies or "
        "cannot be read; this run rebuilds them and what depends on them "
        f"(docs/reruns.md):\n{lines}"
    )
