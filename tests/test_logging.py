"""Every line of Snakemake's console and of its log file is written once.

Importing Opacus (the DP model check that runs while the Snakefile is parsed) installs a
root-logger handler (``logging.basicConfig`` in ``opacus.utils.module_utils``), after which
Snakemake printed each line twice: bare, and again as ``12/07/2026 13:00:48:INFO:...``.
"""

import re
import subprocess
import sys

from _util import fresh_clone, subprocess_env

# the root handler's format: "%(asctime)s:%(levelname)s:%(message)s", "%m/%d/%Y %H:%M:%S"
ROOT_FORMAT = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d:[A-Z]+:")


def assert_each_line_once(text: str, where: str) -> None:
    prefixed = [line for line in text.splitlines() if ROOT_FORMAT.match(line)]
    assert not prefixed, f"{where}: lines repeated by a root-logger handler: {prefixed[:5]}"
    for line in (
        "Building DAG of jobs...",
        "Assuming unrestricted shared filesystem usage.",
    ):
        assert text.count(line) == 1, f"{where}: {line!r} appears {text.count(line)} times"


def run_in(clone, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def test_console_and_log_file_print_every_line_once(tmp_path):
    """From a fresh clone's root, as a user types it: the default experiment's dry run, then
    a real run of its first step (a dry run writes no .snakemake/log file)."""
    clone = fresh_clone(tmp_path / "curvmia")
    assert_each_line_once(run_in(clone, "-n", "--cores", "1"), "dry-run console")
    assert_each_line_once(run_in(clone, "--cores", "1", "prepare_data"), "console")
    (log,) = (clone / ".snakemake" / "log").glob("*.snakemake.log")
    assert_each_line_once(log.read_text(), str(log))


def test_opacus_import_leaves_root_logger_alone():
    """In a fresh interpreter (Opacus not imported yet): the DP model check and the import
    the DP trainer uses add no handler to the root logger and keep its level."""
    code = (
        "import logging, torch\n"
        "from curvmia.models import dp_compatible, import_opacus\n"
        "root = logging.getLogger()\n"
        "before = (list(root.handlers), root.level)\n"
        "dp_compatible(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)))\n"
        "import_opacus().PrivacyEngine\n"
        "assert 'opacus.utils.module_utils' in __import__('sys').modules\n"
        "print((list(root.handlers), root.level) == before, len(root.handlers))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "0"]
