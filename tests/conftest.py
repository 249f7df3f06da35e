import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _util import once_per_run, shared_value, snakemake_cmd, subprocess_env

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def test_config_run(tmp_path_factory) -> Path:
    """The small test config, run once locally in a fresh working directory.

    Shared by the workflow, archive, rerun, safety, shard and import tests, and by both test
    workers (one training run for all): treat it as read-only, copy it (shutil.copytree
    keeps the timestamps) to change anything.
    """

    def run(work: Path) -> None:
        cmd = snakemake_cmd(work, TEST_CONFIG, "--cores", "2")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

    return once_per_run(tmp_path_factory, "test_config_run", run)


@pytest.fixture(scope="session")
def workflow_rules(tmp_path_factory) -> dict:
    """Every rule of the workflow (test config) as tests/_rules.py describes it."""

    def rules(work: Path) -> dict:
        cmd = [sys.executable, str(REPO / "tests" / "_rules.py"), str(TEST_CONFIG), str(work)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])["rules"]

    return shared_value(tmp_path_factory, "workflow_rules", rules)


def pytest_configure(config):
    # Pin threads so CPU results are reproducible and the 2-core machine is not oversubscribed.
    import torch

    torch.set_num_threads(int(os.environ.get("CURVMIA_TEST_THREADS", "1")))


# The longest files first (measured: the SLURM rehearsal about 13 min, the mutant sample,
# the documented commands' 44 dry runs, the rerun table, imported models, the archive's
# rerun, the image replays): pytest-xdist hands files to its workers in this order, so
# none of them starts last and leaves the other worker idle while it runs (docs/testing.md).
SLOW_FIRST = (
    "test_slurm.py",
    "test_mutation.py",
    "test_documented_commands.py",
    "test_reruns.py",
    "test_imported.py",
    "test_archive.py",
    "test_containers.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable
