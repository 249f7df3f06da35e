"""A second run in a folder that another run holds: refused with what to do.

Snakemake refuses such a run itself, but with advice that is wrong while the other run is
alive: ``IncompleteFilesException`` (``--cleanup-metadata``, ``--rerun-incomplete``) when a
running job's output already exists, ``LockException`` otherwise. The Snakefile calls
:func:`refuse_if_held` while the DAG is built, before either check, so the user reads that
another run seems to hold the folder, what it is writing, and to wait or ``--unlock``.

Snakemake's lock files (``.snakemake/locks/<n>.{input,output}.lock``, the paths a run reads
and writes) hold no process id, so whether the other run is alive is not knowable from them:
the message says "seems" and names both remedies.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path


def held_targets(persistence_dir: str | os.PathLike, targets: Iterable[str]) -> list[str]:
    """The ``targets`` that another run's output locks in ``persistence_dir`` hold, sorted."""
    wanted = {os.path.normpath(t) for t in targets}
    held: set[str] = set()
    for lock in sorted(Path(persistence_dir, "locks").glob("*.output.lock")):
        try:
            lines = lock.read_text(encoding="utf-8").splitlines()
        except OSError:  # removed by the other run as it ended
            continue
        held.update(p for p in (os.path.normpath(s.strip()) for s in lines if s.strip()))
    return sorted(held & wanted)


def being_written(persistence_dir: str | os.PathLike) -> list[str]:
    """Outputs marked incomplete (jobs running now, or killed), decoded from Snakemake's
    marker names (urlsafe base64 of the path, long ones split into ``@``-prefixed folders)."""
    root = Path(persistence_dir, "incomplete")
    paths = []
    for marker in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = marker.relative_to(root).parts
        b64 = "".join(part.removeprefix("@") for part in parts)
        try:
            paths.append(base64.urlsafe_b64decode(b64).decode())
        except (ValueError, UnicodeDecodeError):  # not a marker (e.g. migration_underway)
            continue
    return paths


def held_message(workdir: str | os.PathLike, persistence_dir: str | os.PathLike) -> str:
    """The refusal: which locks, since when, what the other run writes, what to do."""
    locks = sorted(Path(persistence_dir, "locks").glob("*.lock"))
    since = min((lock.stat().st_mtime for lock in locks), default=None)
    started = f", taken {datetime.fromtimestamp(since):%Y-%m-%d %H:%M:%S}" if since else ""
    writing = being_written(persistence_dir)
    shown = ", ".join(writing[:3]) + (f" and {len(writing) - 3} more" if len(writing) > 3 else "")
    now = f"; outputs marked incomplete (being written, or left by a killed run): {shown}"
    now = now if writing else ""
    names = ", ".join(lock.name for lock in locks)
    return (
        f"another run seems to hold this folder ({Path(workdir).resolve()}): "
        f"{Path(persistence_dir) / 'locks'} holds its locks ({names}{started}){now}. "
        "Wait for it to finish (Snakemake records no process id: look for it with "
        "`ps -ef | grep snakemake`), or, if no other run is alive (it was killed), run "
        "`snakemake --unlock` and then this command again."
    )


def refuse_if_held(workflow, targets: list[str]) -> list[str]:
    """For ``rule all``'s input: raise ``WorkflowError`` when another run's locks hold any of
    ``targets`` and this process is about to run jobs and lock the folder; else ``[]``.

    Evaluated while the DAG is built, so ``--unlock`` (no DAG), ``--report`` and summaries
    (no execution settings), dry runs, ``--nolock`` and jobs (not the main process) pass.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake_interface_executor_plugins.settings import ExecMode

    settings = workflow.execution_settings
    if workflow.exec_mode != ExecMode.DEFAULT or settings is None or not settings.lock:
        return []
    if workflow.dryrun or workflow.persistence is None:
        return []
    persistence_dir = getattr(workflow.persistence, "path", ".snakemake")
    if held_targets(persistence_dir, targets):
        raise WorkflowError(held_message(os.getcwd(), persistence_dir))
    return []
