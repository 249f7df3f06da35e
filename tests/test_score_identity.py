"""A score file carries the identity of the checkpoint and scoring settings it came from;
every reader checks it against what the workflow expects, and attack outputs record the
identities of the score files they read, checked by metrics (issue 28, items 1 and 3)."""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _util import snakemake_cmd, subprocess_env
from test_scorefile import _arrays

from curvmia.identity import score_identity
from curvmia.io import config_hash, save_npz
from curvmia.scorefile import check_score_files, identity_digest, load_score_file
from curvmia.scores import check_float32_features, load_features, merge_shards

REPO = Path(__file__).resolve().parents[1]
SCORING = {"niter": 4, "h": 0.001, "variant": "paper"}


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ident(row):
    ckpt = {"row": row, "train_hash": "t" * 16, "members_hash": f"m{row:015d}", "data_hash": "d"}
    return score_identity({**ckpt, "arch": "x"}, SCORING)


def _score_file(path, row, **meta):
    arrays = _arrays()
    record = {**json.loads(str(arrays["meta"])), "identity": _ident(row), **meta}
    save_npz(path, **{**arrays, "meta": np.array(json.dumps(record))})
    return path


def test_score_file_copied_over_another_rows_is_refused_by_row(tmp_path):
    """`cp model_0.npz model_8.npz` was attacked silently as target 8 (its AUROC fell)."""
    path = _score_file(tmp_path / "model_8.npz", row=0)  # row 0's file under row 8's name
    want = f"^{path}: score file row is 0, the workflow expects 8: this file was computed "
    want += "from another model; delete it and rerun `snakemake`"
    with pytest.raises(ValueError, match=want):  # the row first, though the members differ too
        load_score_file(path, expect=_ident(8))
    with pytest.raises(ValueError, match=want):
        check_score_files([str(path)], [_ident(8)])
    with pytest.raises(ValueError, match=want):
        load_features([str(path)], expect=[_ident(8)])
    assert load_score_file(path, expect=_ident(0))["loss"].shape == (6, 2)
    other = {**_ident(0), "scoring_hash": config_hash({**SCORING, "niter": 2})}
    with pytest.raises(ValueError, match="scoring_hash is .* computed from other scoring"):
        load_score_file(path, expect=other)


def test_attack_refuses_a_swapped_score_file_before_reading_arrays(tmp_path):
    attack = _script("attack")
    paths = [str(_score_file(tmp_path / f"model_{r}.npz", row=r)) for r in (0, 1)]
    paths.append(str(_score_file(tmp_path / "model_8.npz", row=0)))
    expect = json.dumps({str(r): _ident(r) for r in (0, 1, 8)})
    a = attack.argparse.Namespace(
        shadow_rows=[0, 1], target_rows=[8], shadow_scores=paths[:2],
        target_scores=paths[2:], expect=expect,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"model_8\.npz: score file row is 0, .* expects 8"):
        attack.check_scores(a)
    a.target_rows, a.target_scores, a.expect = [1], paths[1:2], expect
    got = attack.check_scores(a)
    assert got == {"0": config_hash(_ident(0)), "1": config_hash(_ident(1))}


def test_score_file_without_identity_is_stale(tmp_path):
    path = tmp_path / "model_3.npz"
    save_npz(path, **_arrays())  # as written before score files carried an identity
    with pytest.raises(ValueError, match=rf"^{path}: no identity .*\(written before score files"):
        load_score_file(path, expect=_ident(3))
    load_score_file(path)  # no expectation (files of other tools): the fields are checked


def test_truncated_score_file_names_itself_in_every_reader(tmp_path):
    """A truncated score file made every attack fail with a BadZipFile naming no file."""
    path = _score_file(tmp_path / "model_5.npz", row=5)
    path.write_bytes(path.read_bytes()[:300])
    want = f"^{path}: not a readable"
    for read in (
        lambda: check_float32_features([str(path)], ["loss_f32"]),
        lambda: check_score_files([str(path)], [_ident(5)]),
        lambda: load_features([str(path)], expect=[_ident(5)]),
    ):
        with pytest.raises(ValueError, match=want):
            read()


def test_metrics_refuses_an_attack_output_from_other_score_files(tmp_path):
    metrics = _script("metrics")
    metas = [{"identity": _ident(r)} for r in (0, 8)]
    now = {"0": identity_digest(metas[0]), "8": identity_digest(metas[1])}
    ok = {"inputs": np.array(json.dumps(now))}
    metrics.check_attack_inputs({"yeom": ok}, metas, ["a/yeom.npz"])
    old = {"inputs": np.array(json.dumps({**now, "8": "0123456789abcdef"}))}
    want = (
        r"^a/lira\.npz: computed from the score file of row 8 with identity 0123456789abcdef, "
        f"the current score file's is {now['8']}: this result is stale; delete it"
    )
    with pytest.raises(ValueError, match=want):
        metrics.check_attack_inputs({"yeom": ok, "lira": old}, metas, ["a/yeom.npz", "a/lira.npz"])
    with pytest.raises(ValueError, match=r"^a/x\.npz: records no score file identities"):
        metrics.check_attack_inputs({"x": {}}, metas, ["a/x.npz"])


def test_score_meta_carries_the_checkpoints_identity_and_shards_must_agree():
    score = _script("score")
    ckpt = {"row": 2, "train_hash": "t", "members_hash": "m", "data_hash": "d", "arch": "x"}
    meta = json.loads(str(score.with_identity(np.array('{"n": 6}'), ckpt, SCORING)))
    assert meta["identity"] == {**{k: ckpt[k] for k in list(ckpt)[:4]},
                                "scoring_hash": config_hash(SCORING)}  # fmt: skip
    assert meta["n"] == 6 and meta["code"]["script"] == "score.py"

    def shard(i, row):
        arrays = {k: v[3 * i : 3 * i + 3] for k, v in _arrays().items() if k != "meta"}
        m = {"shard": [i, 2], "n": 6, "n_test": 6, "identity": _ident(row)}
        return {**arrays, "meta": np.array(json.dumps(m))}

    with pytest.raises(
        ValueError, match=r"shard 1 of 2: metadata differs from shard 0 in \['identity'\]"
    ):
        merge_shards([shard(0, 2), shard(1, 3)], log=lambda s: None)


def test_swapped_score_file_is_caught_before_any_attack_reads_it(test_config_run, tmp_path):
    """The issue's fault in a finished run: a shadow's score file over a target's. The run's
    parse finds it by its identity (row 0 where 4 is expected) and moves it aside, so no
    attack reads it; the default target then rescores it (curvmia/staleness.py)."""
    from conftest import TEST_CONFIG

    work = tmp_path / "work"
    shutil.copytree(test_config_run, work, symlinks=True)
    res = work / "results" / "test"
    swapped = (res / "scores" / "model_0.npz").read_bytes()
    (res / "scores" / "model_4.npz").write_bytes(swapped)
    attacks = sorted(str(p.relative_to(work)) for p in (res / "attacks").glob("*.npz"))
    before = {a: (work / a).read_bytes() for a in attacks}
    cmd = snakemake_cmd(work, TEST_CONFIG, "--cores", "1", *attacks)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/test/scores/model_4.npz: stale (row: stored 0, expected 4)" in proc.stderr
    assert (res / "scores" / "model_4.npz.stale").read_bytes() == swapped
    assert not (res / "scores" / "model_4.npz").exists()
    assert {a: (work / a).read_bytes() for a in attacks} == before  # no attack ran on it
    plan = subprocess.run(snakemake_cmd(work, TEST_CONFIG, "-n", "--cores", "1"),
                          capture_output=True, text=True, env=subprocess_env())  # fmt: skip
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "output: results/test/scores/model_4.npz" in plan.stdout + plan.stderr
