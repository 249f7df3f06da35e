"""What the Snakefile and rules import at top level imports without torch and timm.

Every SLURM job parses the workflow again; torch and timm take seconds to import (about 3
CPU-s a job). Only the submitting process imports them, inside the model checks of
rules/common.smk (a misspelt arch still fails the dry run).
"""

import re
import subprocess
import sys
from pathlib import Path

from _util import subprocess_env

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = re.compile(r"^(?:from (curvmia(?:\.\w+)*) import|import (curvmia(?:\.\w+)*))", re.M)


def parse_time_modules() -> list[str]:
    """The curvmia modules imported at column 0 of the Snakefile and every rules/*.smk."""
    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    found = {a or b for f in files for a, b in TOP_LEVEL.findall(f.read_text())}
    return sorted(found)


def test_parse_time_modules_import_without_torch_and_timm():
    modules = parse_time_modules()
    assert {"curvmia.imported", "curvmia.cluster", "curvmia.groups"} <= set(modules), modules
    code = (
        "import sys\n"
        "for name in ('torch', 'timm', 'torchvision'):\n"
        "    sys.modules[name] = None  # an import of it raises ImportError\n"
        f"for m in {modules!r}:\n"
        "    __import__(m)\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env()
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], proc.stderr[-3000:]
