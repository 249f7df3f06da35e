"""The effective config is the file's own, run the way users run it: from the repository
root (a fresh clone, so no user's results/ or data/ is touched), with and without
--replace-workflow-config, with an overlay and with --config key=value."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _util import fresh_clone, subprocess_env

REPO = Path(__file__).resolve().parents[1]
# the paper's CIFAR ResNet-18 (docs/method.md: Training recipes): 11,173,962 parameters, counted
# independently of
# this project (torchvision-style BasicBlock ResNet-18 with a 3x3 stem and 10 classes)
RESNET18_CIFAR10_PARAMS = 11_173_962


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return fresh_clone(tmp_path_factory.mktemp("clone") / "curvmia")


def planned(clone: Path, *args: str) -> dict:
    """Dry run from the clone's root: the effective config, as the provenance command's
    params carry it (every section; the compute knobs are not a result's params)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", *args]
    proc = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if "provenance.py" in ln]
    words = shlex.split(line)
    return json.loads(words[words.index("--info") + 1])["config"]


def own_config(*files: str) -> dict:
    """What the files say, later files overlaid on earlier ones, plus the schema defaults."""
    from snakemake.utils import update_config, validate

    cfg: dict = {}
    for f in files:
        update_config(cfg, yaml.safe_load((REPO / f).read_text()))
    validate(cfg, str(REPO / "config" / "schema.yaml"), set_default=True)
    # less the compute knobs (docs/reruns.md), which the provenance params leave out
    del cfg["compute"]
    del cfg["data"]["workers"]
    for knob in ("memory_mb", "forward_batch", "shards"):
        del cfg["scoring"][knob]
    return cfg


@pytest.mark.parametrize("replace", [False, True], ids=["merge", "replace"])
@pytest.mark.parametrize("paper", ["cifar10", "cifar100"])
def test_paper_config_plans_exactly_the_files_config(clone, paper, replace):
    extra = ["--replace-workflow-config"] if replace else []
    config = planned(clone, *extra, "--configfile", f"config/{paper}.yaml")
    assert config == own_config(f"config/{paper}.yaml")
    assert config["train"]["model_kwargs"] == {}  # digits' {width: 16, layers: [1, 1]} leaked


def test_overlay_and_config_override(clone):
    config = planned(
        clone,
        "--config",
        "experiment=cifar10-fast",
        "--configfile",
        "config/cifar10.yaml",
        "config/presets/fast.yaml",
    )
    want = own_config("config/cifar10.yaml", "config/presets/fast.yaml")
    want["experiment"] = "cifar10-fast"
    assert config == want
    assert config["train"]["epochs"] == 30 and config["train"]["amp"] == "bf16"
    assert config["train"]["model_kwargs"] == {} and config["train"]["arch"] == "cifar_resnet18"


def test_default_config_without_configfile(clone):
    config = planned(clone, "--config", "experiment=other")
    want = own_config("config/config.yaml")
    want["experiment"] = "other"
    assert config == want


def test_cifar10_model_has_the_papers_parameter_count():
    from curvmia.models import build_model, count_params

    tr = own_config("config/cifar10.yaml")["train"]
    assert count_params(build_model(tr["arch"], 10, 3, tr["model_kwargs"])) == (
        RESNET18_CIFAR10_PARAMS
    )


def test_config_files_that_are_not_mappings_name_file_and_line(tmp_path):
    """config/config.yaml (read by the Snakefile) empty or a list; a duplicate key in it."""
    cases = {
        "": "config/config.yaml:1: the config file is empty",
        "- a\n- b\n": "config/config.yaml:1: expected a YAML mapping of config keys, got a list",
        "experiment: a\ndata:\n  root: x\nexperiment: b\n": (
            "config/config.yaml:4: duplicate key 'experiment' (first on line 1)"
        ),
        "experiment: [a\nfoo: 1\n": "config/config.yaml:2: not valid YAML",
    }
    for text, line in cases.items():
        (tmp_path / "config").mkdir(exist_ok=True)
        (tmp_path / "config" / "config.yaml").write_text(text)
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n"]
        proc = subprocess.run(
            cmd, cwd=tmp_path, capture_output=True, text=True, env=subprocess_env()
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and f"Invalid config file: {line}" in out, out[-2000:]
        assert "Job stats" not in out
