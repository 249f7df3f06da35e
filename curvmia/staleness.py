"""Which intermediates a run must rebuild, decided by their stored identity.

Snakemake decides staleness from its own metadata (.snakemake/): when that is gone (deleted
to clear a lock, or results copied into a new clone), a changed config reruns nothing, and
a deleted or damaged intermediate whose consumers' outputs exist is not made again. The
workflow therefore also compares, while it is parsed, the identity every checkpoint and score
file stores (curvmia/identity.py) with the one the config implies, reading only their small
metadata, never the weights or score arrays. Each file is absent, damaged (its metadata
cannot be read), stale (a stored identity field differs) or good; rules/common.smk turns the
first three into jobs (docs/reruns.md: "Identity decides staleness"): a run that executes
jobs moves damaged and stale files aside, so that they are made again as missing ones; a dry
run instead marks them with a fresh input of their producer, so that it lists the same jobs
(a real run cannot: Snakemake would record the marker among the job's inputs, and a later
run without it would count a changed input set).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def score_finding(path: str | os.PathLike, expected: dict[str, Any]) -> Finding | None:
    """The state of a score file against the identity ``expected`` of it (None: good). A
    file without an identity record (written before score files carried one) is stale: every
    reader refuses it (curvmia/scorefile.py: check_score_identity)."""
    path = str(path)
    if not os.path.exists(path):
        return Finding(path, "absent", "missing")
    try:
        meta = read_score_meta(path)
    except ValueError as e:
        return Finding(path, "damaged", str(e).removeprefix(f"{path}: "))
    if not isinstance(meta.get("identity"), dict):
        return Finding(path, "stale", "no identity record (written before score files carried one)")
    why = first_difference(meta["identity"], expected)
    return Finding(path, "stale", why) if why else None


def npz_finding(path: str | os.PathLike, field: str) -> Finding | None:
    """The state of a result archive that carries no identity of its own (an attack
    output): absent, or damaged when it is no readable npz holding ``field`` (None: good).
    Its staleness is Snakemake's (its inputs) and its readers' (the identities it records)."""
    path = str(path)
    if not os.path.exists(path):
        return Finding(path, "absent", "missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            if field not in z.files:
                return Finding(path, "damaged", f"no {field!r} array")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        return Finding(path, "damaged", f"not a readable npz ({type(e).__name__})")
    return None


def marker_path(path: str) -> str:
    """Where a dry run writes the reason a file must be rebuilt: an input of its producer,
    newer than the file, so that the dry run lists the producer and its consumers."""
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


# Snakemake's short options that take a value: a combined flag ends at the first of them
_VALUED = set("sdcjCRUOTwPWG")
# options after which Snakemake runs no job (it inspects, lists, draws or cleans)
_NO_JOBS = {"--dag", "--rulegraph", "--filegraph", "--d3dag", "--summary", "-S",
            "--detailed-summary", "-D", "--list", "-l", "--list-target-rules", "--lt",
            "--list-changes", "--lc", "--list-untracked", "--lint", "--unlock",
            "--cleanup-metadata", "--cm", "--delete-all-output", "--delete-temp-output",
            "--touch", "-t", "--containerize", "--archive", "--print-compilation",
            "--export-cwl", "--version", "-v", "--help", "-h", "--cleanup-shadow",
            "--generate-unit-tests", "--report", "--conda-create-envs-only", "--create-envs-only",
            "--conda-cleanup-envs"}  # fmt: skip


def is_dry_run(argv: list[str]) -> bool:
    """Whether a Snakemake command line asks for a dry run (``-n``, ``--dry-run``,
    ``--dryrun``, or ``n`` inside combined short flags such as ``-np``)."""
    for a in argv[1:]:
        if a in ("--dry-run", "--dryrun"):
            return True
        if len(a) > 1 and a[0] == "-" and a[1] != "-" and a[1:].isalpha():
            for c in a[1:]:
                if c in _VALUED:
                    break
                if c == "n":
                    return True
    return False


def runs_jobs(argv: list[str]) -> bool:
    """Whether a Snakemake command line may run jobs: neither a dry run nor one of the
    options that only inspect, list, draw or clean."""
    return not is_dry_run(argv) and not any(a.split("=")[0] in _NO_JOBS for a in argv[1:])


def move_aside(path: str) -> str:
    """Rename a damaged or stale file to ``<path>.stale`` (replacing an older one), so
    that Snakemake sees it missing and makes it again; returns the new name."""
    aside = f"{path}.stale"
    os.replace(path, aside)
    return aside
