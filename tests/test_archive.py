"""Archive a finished run, unpack it in a fresh directory and rerun from it: same metrics.

Cheap by design: the unpacked workflow reuses the session's trained models and scores
(copied in, as a user would bring results along), so attacks, metrics, figures and
provenance rerun from the archived code and config; training and scoring determinism have
their own tests (test_models_train, test_scores).
"""

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from _util import subprocess_env

from curvmia.archive import MANIFEST, build_archive, verify_archive

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"

pytestmark = pytest.mark.slow


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout + proc.stderr


def test_archive_reruns_to_identical_metrics(test_config_run, tmp_path):
    out = tmp_path / "run.tar.gz"
    manifest = build_archive(out, REPO, test_config_run, [TEST_CONFIG])
    assert verify_archive(out) == manifest
    names = set(manifest["sha256"])
    for must in (
        "workflow/Snakefile",
        "workflow/envs/requirements.lock",
        "workflow/envs/gpu.lock",
        "workflow/containers/curvmia.def",
        "workflow/profiles/slurm/config.yaml",
        "workflow/run-config/test.yaml",
        "results/test/provenance.json",
    ):
        assert must in names, must
    assert not [n for n in names if n.endswith(".sif") or "/models/" in n]
    images = {"gpu": "containers/curvmia.sif", "cpu": "containers/curvmia.sif"}
    assert manifest["container_images"] == images
    assert manifest["container_image_sha256"] == {"containers/curvmia.sif": None}  # not built
    # every definition in the repository (the workflow image and the conversion image)
    assert manifest["container_definitions"] == {
        f"containers/{name}": hashlib.sha256((REPO / "containers" / name).read_bytes()).hexdigest()
        for name in ("curvmia.def", "tf.def")
    }

    fresh = tmp_path / "fresh"
    with tarfile.open(out) as tar:
        tar.extractall(fresh, filter="data")
    work = fresh / "run"
    for part in ("data", "results/test/masks.npz", "results/test/models", "results/test/scores"):
        src = test_config_run / part
        copy = shutil.copytree if src.is_dir() else shutil.copy2
        (work / part).parent.mkdir(parents=True, exist_ok=True)
        copy(src, work / part)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(fresh / "workflow" / "Snakefile"),
        "-d",
        str(work),
        "--cores",
        "2",
        "--configfile",
        str(fresh / "workflow" / "run-config" / "test.yaml"),
    ]
    plan = run([*cmd, "-n"])
    assert "rule train:" not in plan and "rule score:" not in plan, plan[-3000:]
    assert "rule attack:" in plan and "rule metrics:" in plan
    run(cmd)

    pd.testing.assert_frame_equal(
        pd.read_csv(work / "results" / "test" / "metrics.csv"),
        pd.read_csv(fresh / "results" / "test" / "metrics.csv"),
    )
    prov = json.loads((work / "results" / "test" / "provenance.json").read_text())
    # the archived workflow ran (its commit comes from ARCHIVE.json), not the repository's
    assert prov["git_commit"] == f"{manifest['git_commit']} (archive)"
    original = json.loads((fresh / "results" / "test" / "provenance.json").read_text())
    assert prov["config_hash"] == original["config_hash"]
    assert (fresh / MANIFEST).exists()


def test_archive_records_the_sha256_of_each_image_used(tmp_path):
    from curvmia.archive import image_digests

    sif = tmp_path / "containers" / "x.sif"
    sif.parent.mkdir()
    sif.write_bytes(b"an image")
    uri = "oras://ghcr.io/o/curvmia:1@sha256:" + "ab" * 32
    images = {"gpu": "containers/x.sif", "cpu": uri, "other": "containers/absent.sif"}
    assert image_digests(images, tmp_path) == {
        "containers/x.sif": hashlib.sha256(b"an image").hexdigest(),
        uri: "ab" * 32,
        "containers/absent.sif": None,
    }


def test_archive_reads_the_config_the_run_read(tmp_path):
    """An overlay replacing one image keeps the other, as in the run (it used to replace the
    whole containers section); with no config file the run read config/config.yaml."""
    import yaml

    base = yaml.safe_load(TEST_CONFIG.read_text())
    base["containers"] = {"gpu": "g.sif", "cpu": "c.sif"}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "over.yaml").write_text("containers: {gpu: g2.sif}\n")
    work = tmp_path / "work"
    for exp in ("test", "digits"):
        for name in ("provenance.json", "metrics.csv", "metrics.md", "models.csv"):
            (work / "results" / exp).mkdir(parents=True, exist_ok=True)
            (work / "results" / exp / name).write_text("x\n")
    (work / "c.sif").write_bytes(b"cpu image")
    configs = [tmp_path / "base.yaml", tmp_path / "over.yaml"]
    manifest = build_archive(tmp_path / "a.tar.gz", REPO, work, configs)
    assert manifest["experiment"] == "test"
    assert manifest["container_images"] == {"gpu": "g2.sif", "cpu": "c.sif"}
    assert manifest["container_image_sha256"] == {
        "g2.sif": None,
        "c.sif": hashlib.sha256(b"cpu image").hexdigest(),
    }
    assert manifest["config_files"] == ["run-config/base.yaml", "run-config/over.yaml"]
    # no --configfile: the run read config/config.yaml
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    manifest = build_archive(tmp_path / "b.tar.gz", REPO, work, [])
    assert manifest["experiment"] == default["experiment"] == "digits"
    assert manifest["config_files"] == []
