"""Code style and workflow hygiene: ruff and `snakemake --lint` are clean."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _util import subprocess_env
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    env = subprocess_env()
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)


def test_ruff_check_and_format():
    check = run(str(BIN / "ruff"), "check", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_snakemake_lint_clean():
    proc = run(sys.executable, "-m", "snakemake", "--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


EXPERIMENT_CONFIGS = sorted(
    p for p in (REPO / "config").rglob("*.yaml") if p.name not in ("config.yaml", "schema.yaml")
)


@pytest.mark.parametrize("configfile", EXPERIMENT_CONFIGS, ids=lambda p: p.name)
def test_snakemake_lint_clean_for_every_shipped_config(configfile, tmp_path):
    cfg = yaml.safe_load(configfile.read_text())
    if cfg.get("data", {}).get("dataset") == "imagefolder":
        # an ImageFolder config refuses to parse without its data: give it a tiny one
        for cls in ("a", "b"):
            (tmp_path / "train" / cls).mkdir(parents=True)
            Image.new("RGB", (4, 4)).save(tmp_path / "train" / cls / "0.png")
        cfg["data"]["path"] = str(tmp_path)
        configfile = tmp_path / configfile.name
        configfile.write_text(yaml.safe_dump(cfg))
    proc = run(sys.executable, "-m", "snakemake", "--lint", "--configfile", str(configfile))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out
