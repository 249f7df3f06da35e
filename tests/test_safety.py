"""No config value or file name can inject into a shell command or reach an unintended path.

Strings that reach paths (experiment, data.root, attack labels, image paths) are restricted
by the schema; wildcards are constrained; free-form values reach the shell only as quoted
JSON params ({params.x:q}). Hostile values get a clear refusal or a correct run.
"""

import copy
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from _util import snakemake_cmd, subprocess_env
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "config" / "schema.yaml")
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
HOSTILE = ["a b", "x;touch pwned", "$(touch pwned)", "`id`", "..", "../x", "a/../../b", "'\"q"]
# Params a shell command may use unquoted: their schema type leaves no room for a hostile value.
UNQUOTED_OK = {
    ("prepare_data", "dataset"): "enum",
    ("prepare_data", "test_size"): "integer",
    ("prepare_data", "split_seed"): "integer",
    ("train", "device"): "enum",
    ("score", "device"): "enum",
    ("attack", "shadows"): "integers",
    ("attack", "targets"): "integers",
    ("model_summary", "shadows"): "integers",
    ("model_summary", "targets"): "integers",
    ("curv_hist", "row"): "integer",
}


def base_config() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.update(yaml.safe_load(TEST_CONFIG.read_text()))
    return cfg


def set_key(cfg: dict, path: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    *parents, last = path.split(".")
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[last] = value
    return cfg


PATH_KEYS = ["experiment", "data.root", "attacks.0.label", "containers.gpu", "containers.cpu"]
RELATIVE = ("..", "../x", "a/../../b")  # a relative data directory is legitimate


@pytest.mark.parametrize(
    "key,value",
    [(k, v) for k in PATH_KEYS for v in HOSTILE if not (k == "data.root" and v in RELATIVE)],
)
def test_schema_refuses_hostile_path_values(key, value):
    with pytest.raises(WorkflowError, match=re.escape(key.split(".")[-1])):
        validate(set_key(base_config(), key, value), SCHEMA)


@pytest.mark.parametrize("value", RELATIVE)
def test_schema_accepts_relative_data_root(value):
    cfg = set_key(base_config(), "data.root", value)
    validate(cfg, SCHEMA)
    assert cfg["data"]["root"] == value


def test_pinned_registry_uri_is_accepted_and_unpinned_refused():
    digest = "0" * 64
    validate(
        set_key(base_config(), "containers.gpu", f"oras://ghcr.io/o/gpu@sha256:{digest}"), SCHEMA
    )
    with pytest.raises(WorkflowError, match="gpu"):
        validate(set_key(base_config(), "containers.gpu", "docker://ghcr.io/o/gpu:latest"), SCHEMA)


def test_every_wildcard_is_constrained_against_paths_and_shell(workflow_rules):
    for name, r in workflow_rules.items():
        for wc in r["wildcards"]:
            assert wc in r["constraints"], (name, wc)
            rx = re.compile(r["constraints"][wc])
            for value in HOSTILE + ["a/b", ".hidden", ""]:
                assert not rx.fullmatch(value), (name, wc, value)


def test_shell_placeholders_are_quoted_unless_reviewed(workflow_rules):
    """A new unquoted {params.x}, {input…}, {output…}, {log…} or {wildcards.x} fails here:
    quote it (:q) or, for a param, review it above."""
    seen = set()
    for name, r in workflow_rules.items():
        if not r["shell"]:
            continue
        pattern = r"\{(params|input|output|log|wildcards)(?:\.(\w+))?(:\w+)?\}"
        for kind, attr, fmt in re.findall(pattern, r["shell"]):
            seen.add(kind)
            if kind == "params" and (name, attr) in UNQUOTED_OK:
                continue
            assert fmt == ":q", f"rule {name}: {{{kind}{'.' + attr if attr else ''}}}"
        assert "{config" not in r["shell"], name
    assert seen == {"params", "input", "output", "log", "wildcards"}


def dry_run(tmp_path: Path, cfg: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = snakemake_cmd(tmp_path / "work", path, "-n", "-p", "--cores", "1")
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())


def test_hostile_values_end_to_end(tmp_path):
    """One dry run: a hostile experiment name is refused, naming the key."""
    proc = dry_run(tmp_path, set_key(base_config(), "experiment", "x;touch pwned"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "experiment" in out and "does not match" in out, out[-3000:]
    assert not (tmp_path / "work" / "pwned").exists()


def test_free_form_values_reach_the_shell_as_one_quoted_argument(tmp_path):
    """A free-form string inside JSON params (a mirror URL) and a '..' data root: a correct
    plan. (Unknown recipe keys and model keywords are refused before any job:
    tests/test_config.py.)"""
    evil = "$(touch pwned); `id` 'q\" x"
    cfg = set_key(base_config(), "data.mirror", evil)
    cfg = set_key(cfg, "data.root", "../shared/data")
    proc = dry_run(tmp_path, cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    # training commands wait for the prepared data (a checkpoint, docs/reruns.md); the
    # provenance command carries the whole config as one JSON argument
    line = next(ln for ln in proc.stdout.splitlines() if "provenance.py" in ln)
    argv = shlex.split(line)
    assert json.loads(argv[argv.index("--info") + 1])["config"]["data"]["mirror"] == evil
    # the data directory is where the config says, relative to the working directory
    argv = shlex.split(next(ln for ln in proc.stdout.splitlines() if "make_masks.py" in ln))
    assert re.fullmatch(
        r"\.\./shared/data/digits-[0-9a-f]{8}/manifest\.json", argv[argv.index("--data") + 1]
    )
    assert not (tmp_path / "work" / "pwned").exists()
