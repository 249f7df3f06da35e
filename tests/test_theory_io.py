"""Reading a sweep back (curvmia.sweeps: targets.csv, metrics.csv, score and member files;
curvmia.theory.sweep_frame) and its refusals (killed mutants, docs/testing.md)."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_theory import _features

from curvmia.io import save_npz
from curvmia.sweeps import read_sweep
from curvmia.theory import sweep_frame

N, Q = 40, 2  # population size and queries of the small score files (N != Q on purpose)
CFG = {
    "loss_clip": 10.0,
    "c2": 0.0,
    "query": 0,
    "kl_k": 3,
    "kl_null_reps": 2,
    "delta": 1e-5,
    "alpha": 0.05,
    "audit_select": 0.5,
    "seed": 0,
}
TARGETS_HEADER = "sweep,value,seed,model,scores,members,test_acc\n"
METRICS_HEADER = "attack,target,auroc,value,seed\n"


def _member(m=10):
    member = np.zeros(N, bool)
    member[:m] = True
    return member


def _score_arrays(seed=0):
    """A valid score file's arrays (test_theory's synthetic features, no membership effect)."""
    return _features(np.random.default_rng(seed), np.zeros(N, bool), 0.0)


def _sweep_dir(tmp_path, member=None):
    """A sweep folder with scores/a.npz and members/a.npy (paths relative to the folder)."""
    d = tmp_path / "sweep"
    (d / "scores").mkdir(parents=True)
    (d / "members").mkdir()
    save_npz(d / "scores" / "a.npz", **_score_arrays())
    np.save(d / "members" / "a.npy", _member() if member is None else member)
    return d


def _targets(sweep="size", value=50, seed=1, model="007", scores="scores/a.npz",
             members="members/a.npy", test_acc=0.875):  # fmt: skip
    return pd.DataFrame(
        [{"sweep": sweep, "value": value, "seed": seed, "model": model, "scores": scores,
          "members": members, "test_acc": test_acc}]
    )  # fmt: skip


def _write(path, text):
    path.write_text(text)
    return str(path)


# --- read_sweep -------------------------------------------------------------------------------


def test_read_sweep_keeps_leading_zero_model_and_target_ids_as_strings(tmp_path):
    tc = _write(tmp_path / "targets.csv", TARGETS_HEADER + "size,50,1,007,s.npz,m.npy,0.875\n")
    # no aggregate rows: every target id looks like a number
    mc = _write(tmp_path / "metrics.csv", METRICS_HEADER + "yeom,007,0.6,50,1\nloss,010,0.7,50,1\n")
    t, mt = read_sweep(tc, mc, "size")
    assert list(t.columns) == ["sweep", "value", "seed", "model", "scores", "members", "test_acc"]
    assert t["model"].tolist() == ["007"]
    assert t["sweep"].tolist() == ["size"] and t["value"].tolist() == [50]
    assert t["seed"].tolist() == [1] and t["test_acc"].tolist() == [0.875]
    assert mt["target"].tolist() == ["007", "010"]
    assert mt["attack"].tolist() == ["yeom", "loss"] and mt["auroc"].tolist() == [0.6, 0.7]


def test_read_sweep_refuses_an_unknown_sweep(tmp_path):
    with pytest.raises(ValueError, match=r"^sweep must be one of \('dp', 'size'\), got 'lr'$"):
        read_sweep(str(tmp_path / "t.csv"), str(tmp_path / "m.csv"), "lr")


def test_read_sweep_refuses_missing_target_columns(tmp_path):
    tc = _write(tmp_path / "targets.csv", "sweep,value,seed,model,scores,test_acc\n")
    want = (
        f"{tc}: missing columns ['members']; expected "
        "('sweep', 'value', 'seed', 'model', 'scores', 'members', 'test_acc')"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        read_sweep(tc, str(tmp_path / "metrics.csv"), "dp")


def test_read_sweep_refuses_empty_targets(tmp_path):
    tc = _write(tmp_path / "targets.csv", TARGETS_HEADER)
    with pytest.raises(ValueError, match=f"^{re.escape(tc)}: no sweep targets$"):
        read_sweep(tc, str(tmp_path / "metrics.csv"), "dp")


def test_read_sweep_refuses_targets_of_another_sweep(tmp_path):
    tc = _write(tmp_path / "targets.csv", TARGETS_HEADER + "size,50,0,m,s.npz,m.npy,0.9\n")
    want = f"{tc}: column 'sweep' must be 'dp', got {{'size'}}"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        read_sweep(tc, str(tmp_path / "metrics.csv"), "dp")


def test_read_sweep_refuses_missing_metrics_columns(tmp_path):
    tc = _write(tmp_path / "targets.csv", TARGETS_HEADER + "dp,1.0,0,m,s.npz,m.npy,0.9\n")
    mc = _write(tmp_path / "metrics.csv", "attack,target,value\nyeom,m,1.0\n")
    want = f"{mc}: missing columns ['auroc', 'seed']"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        read_sweep(tc, mc, "dp")


# --- sweep_frame ------------------------------------------------------------------------------


def test_sweep_frame_columns_and_infinite_eps_of_a_size_sweep(tmp_path, monkeypatch):
    d = _sweep_dir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths resolve against the targets.csv folder only
    f = sweep_frame(_targets(), d, CFG)
    assert list(f.columns[:5]) == ["sweep", "value", "seed", "model", "test_acc"]
    assert len(f) > 0
    assert (f["sweep"] == "size").all() and (f["value"] == 50).all() and (f["seed"] == 1).all()
    assert (f["model"] == "007").all() and (f["test_acc"] == 0.875).all()
    assert (f["eps_train"] == math.inf).all() and (f["m"] == 10).all()


def test_sweep_frame_dp_eps_is_the_value(tmp_path):
    d = _sweep_dir(tmp_path)
    f = sweep_frame(_targets(sweep="dp", value=2.5), d, CFG)
    assert (f["eps_train"] == 2.5).all() and (f["sweep"] == "dp").all()


def test_sweep_frame_paths_relative_to_the_current_directory_or_absolute(tmp_path, monkeypatch):
    d = _sweep_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other"  # base where the files are not: the current directory serves
    other.mkdir()
    f = sweep_frame(
        _targets(scores="sweep/scores/a.npz", members="sweep/members/a.npy"), other, CFG
    )
    g = sweep_frame(
        _targets(scores=str(d / "scores" / "a.npz"), members=str(d / "members" / "a.npy")),
        other,
        CFG,
    )
    assert (f["m"] == 10).all() and (g["m"] == 10).all()


@pytest.mark.parametrize("which", ["scores", "members"])
def test_sweep_frame_names_a_missing_file(tmp_path, monkeypatch, which):
    d = _sweep_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    want = f"{which}/gone.npy: named in {d / 'targets.csv'} but not found"
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(want)}$"):
        sweep_frame(_targets(**{which: f"{which}/gone.npy"}), d, CFG)


@pytest.mark.parametrize(
    "member, got",
    [
        (np.zeros(N, np.int64), f"int64 ({N},)"),
        (np.zeros(N + 1, bool), f"bool ({N + 1},)"),
        (np.zeros((N, 1), bool), f"bool ({N}, 1)"),
    ],
)
def test_sweep_frame_refuses_a_member_file_of_wrong_type_or_length(tmp_path, member, got):
    d = _sweep_dir(tmp_path, member=member)
    want = f"members/a.npy: expected a bool array of {N} population entries, got {got}"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        sweep_frame(_targets(), d, CFG)


def test_sweep_frame_never_unpickles_a_member_file(tmp_path):
    d = _sweep_dir(tmp_path)
    np.save(d / "members" / "a.npy", _member().astype(object), allow_pickle=True)
    with pytest.raises(
        ValueError,
        match=r"members/a\.npy: not a readable members array \(ValueError: Object arrays "
        r"cannot be loaded when allow_pickle=False\)$",
    ):
        sweep_frame(_targets(), d, CFG)


def test_read_sweep_then_sweep_frame_keeps_the_model_id(tmp_path, monkeypatch):
    d = _sweep_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    tc = _write(d / "targets.csv", TARGETS_HEADER + "dp,1.0,0,007,scores/a.npz,members/a.npy,0.5\n")
    mc = _write(d / "metrics.csv", METRICS_HEADER + "yeom,007,0.6,1.0,0\n")
    t, _ = read_sweep(tc, mc, "dp")
    f = sweep_frame(t, Path(tc).parent, CFG)
    assert (f["model"] == "007").all() and (f["eps_train"] == 1.0).all()
