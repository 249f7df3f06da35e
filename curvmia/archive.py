"""Archive a finished experiment so that it can be rerun elsewhere.

The archive (a .tar.gz) holds the workflow exactly as committed (every git-tracked file: code,
config, profiles, container definitions, the hash-locked requirement files), the config files
of the run, the run's provenance.json and metrics, and ARCHIVE.json (commit, config files,
container images with the sha256 of each .sif that exists and of each definition, sha256 of
every member). Container images are referenced, not packed: they are large, and ARCHIVE.json
names them (a .sif path or a digest-pinned registry URI).

`snakemake --archive` is not used: it packs the conda environment of every rule with a conda:
directive and so needs a working conda, and it leaves out the files the rules call through
the shell (scripts/, the package). See docs/reproducibility.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from .configfile import effective_config
from .io import sha256_file
from .provenance import git, git_commit

MANIFEST = "ARCHIVE.json"
RESULT_FILES = ("provenance.json", "metrics.csv", "metrics.md", "models.csv")


def tracked_files(repo: Path) -> list[str]:
    """Files under version control in `repo` (relative paths), as git lists them."""
    try:
        out = git(repo, "ls-files", "-z", timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"{repo} is not a git checkout: the archive packs tracked files") from e
    return sorted(f for f in out.split("\0") if f and (repo / f).is_file())


def image_digests(images: dict[str, str], workdir: Path) -> dict[str, str | None]:
    """sha256 of each configured image: a local .sif's file hash (None when not built), or the
    digest a pinned registry URI names."""
    out: dict[str, str | None] = {}
    for ref in sorted(set(images.values())):
        if "@sha256:" in ref:
            out[ref] = ref.rsplit("@sha256:", 1)[1]
        else:
            path = Path(ref) if Path(ref).is_absolute() else workdir / ref
            out[ref] = sha256_file(path) if path.is_file() else None
    return out


def archive_members(
    repo: Path, workdir: Path, configfiles: list[str | Path], experiment: str
) -> tuple[dict[str, Path], list[str]]:
    """The archive's members (name in the archive -> file) and the run's config files' names
    under workflow/: every tracked file, the config files, the run's RESULT_FILES."""
    members: dict[str, Path] = {f"workflow/{f}": repo / f for f in tracked_files(repo)}
    run_configs = []
    for cf in map(Path, configfiles):
        name = f"workflow/run-config/{cf.name}"
        members[name] = cf
        run_configs.append(name.removeprefix("workflow/"))
    results = Path("results") / experiment
    for name in RESULT_FILES:
        path = workdir / results / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: run the workflow to completion before archiving")
        members[str(results / name)] = path
    return members, run_configs


def write_archive(out: Path, members: dict[str, Path], manifest: dict[str, Any]) -> None:
    """Pack ``members`` and the manifest (as ARCHIVE.json) into the .tar.gz ``out``; it
    appears complete or not at all."""
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, path in sorted(members.items()):
            tar.add(path, arcname=name, recursive=False)
        blob = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(blob), int(time.time())
        tar.addfile(info, io.BytesIO(blob))
    tmp.rename(out)


def build_archive(
    out: str | Path,
    repo: str | Path,
    workdir: str | Path,
    configfiles: list[str | Path],
) -> dict[str, Any]:
    """Write the archive of the run in `workdir` (made with `configfiles`) to `out`.

    Members: workflow/<tracked file>, workflow/run-config/<name> for each config file,
    results/<experiment>/<RESULT_FILES>, and ARCHIVE.json. Returns the manifest.
    """
    repo, workdir, out = Path(repo).resolve(), Path(workdir).resolve(), Path(out)
    if out.exists():
        raise FileExistsError(f"archive exists already: {out}")
    # the config the run read: its files overlaid (config/config.yaml only when none), then
    # the schema's defaults, as the Snakefile builds it
    config: dict[str, Any] = effective_config(
        configfiles, repo / "config" / "config.yaml", repo / "config" / "schema.yaml"
    )
    members, run_configs = archive_members(repo, workdir, configfiles, config["experiment"])
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(repo),
        "experiment": config["experiment"],
        "config_files": run_configs,
        "container_images": config.get("containers", {}),
        # what ran: the image files (when built here) and the definitions they come from
        "container_image_sha256": image_digests(config.get("containers", {}), workdir),
        "container_definitions": {
            n.removeprefix("workflow/"): sha256_file(p)
            for n, p in sorted(members.items())
            if n.startswith("workflow/containers/") and n.endswith(".def")
        },
        "container_images_note": "referenced, not packed: build them from workflow/containers/"
        " or pull the digest-pinned URIs",
        "rerun": "cd workflow && snakemake --cores all "
        + " ".join(f"--configfile {c}" for c in run_configs),
        "sha256": {name: sha256_file(path) for name, path in sorted(members.items())},
    }
    write_archive(out, members, manifest)
    return manifest


def verify_archive(path: str | Path) -> dict[str, Any]:
    """Check every member against ARCHIVE.json's sha256; return the manifest."""
    with tarfile.open(path, "r:gz") as tar:
        manifest = json.load(tar.extractfile(MANIFEST))
        names = set(tar.getnames()) - {MANIFEST}
        if names != set(manifest["sha256"]):
            raise ValueError(f"{path}: members differ from {MANIFEST}")
        for name, digest in manifest["sha256"].items():
            h = hashlib.sha256(tar.extractfile(name).read()).hexdigest()
            if h != digest:
                raise ValueError(f"{path}: {name} does not match its sha256 in {MANIFEST}")
    return manifest
