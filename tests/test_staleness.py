"""Identity decides staleness (curvmia/staleness.py): each intermediate is absent, damaged,
stale or good from its small metadata alone; markers make Snakemake rerun the producer."""

import json
import os

import numpy as np
import pytest
import torch

from curvmia import staleness
from curvmia.checkpoint import read_checkpoint_meta, save_checkpoint
from curvmia.identity import score_identity

IDENT = {"row": 3, "train_hash": "t" * 16, "members_hash": "m" * 16, "data_hash": "d" * 16}
SCORING = {"niter": 4, "h": 0.001}


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model_3.pt"
    save_checkpoint(path, torch.nn.Linear(4, 2), {"arch": "linear", **IDENT})
    return path


def score_file(path, meta):
    np.savez(path, loss=np.zeros((2, 1)), meta=np.array(json.dumps(meta)))
    return path


def test_checkpoint_states(checkpoint, tmp_path):
    assert staleness.checkpoint_finding(checkpoint, IDENT) is None
    f = staleness.checkpoint_finding(checkpoint, {**IDENT, "train_hash": "x" * 16})
    assert (f.state, f.why) == ("stale", f"train_hash: stored {'t' * 16!r}, expected {'x' * 16!r}")
    f = staleness.checkpoint_finding(checkpoint, {**IDENT, "data_hash": "e" * 16})
    assert f.state == "stale" and f.why.startswith("data_hash:")
    missing = tmp_path / "model_4.pt"
    assert staleness.checkpoint_finding(missing, IDENT) == staleness.Finding(
        str(missing), "absent", "missing"
    )
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    f = staleness.checkpoint_finding(checkpoint, IDENT)
    assert f.state == "damaged" and "not a readable checkpoint" in f.why


def test_checkpoint_meta_is_read_without_the_weights(checkpoint):
    meta = read_checkpoint_meta(checkpoint)
    assert "state_dict" not in meta and {k: meta[k] for k in IDENT} == IDENT
    with pytest.raises(FileNotFoundError):
        read_checkpoint_meta(checkpoint.with_name("nope.pt"))
    torch.save({"weights": torch.zeros(2)}, checkpoint)
    with pytest.raises(ValueError, match="no state_dict"):
        read_checkpoint_meta(checkpoint)


def test_score_file_states(tmp_path):
    want = score_identity(IDENT, SCORING)
    assert want == score_identity(IDENT, SCORING)  # the identity the scorer writes
    path = score_file(tmp_path / "s.npz", {"row": 3, "identity": want})
    assert staleness.score_finding(path, want) is None
    for key in want:
        f = staleness.score_finding(path, {**want, key: "other"})
        assert f.state == "stale" and f.why.startswith(f"{key}: stored ")
    path.write_bytes(path.read_bytes()[:50])
    assert staleness.score_finding(path, want).state == "damaged"
    assert staleness.score_finding(tmp_path / "none.npz", want).state == "absent"


def test_score_file_without_an_identity_is_stale(tmp_path):
    want = score_identity(IDENT, SCORING)
    # as written before score files carried an identity: every reader refuses it
    path = score_file(tmp_path / "s.npz", {"row": 3, "scoring": SCORING})
    f = staleness.score_finding(path, want)
    assert (f.state, f.why) == (
        "stale",
        "no identity record (written before score files carried one)",
    )


def test_markers_are_written_fresh_and_removed_when_good(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("results")
    open("results/a.pt", "w").close()
    stale = staleness.Finding("results/a.pt", "stale", "row: stored 0, expected 1")
    absent = staleness.Finding("results/b.pt", "absent", "missing")
    staleness.mark([stale, absent], ["results/a.pt", "results/b.pt"])
    marker = staleness.marker_path("results/a.pt")
    assert open(marker).read() == "results/a.pt: stale (row: stored 0, expected 1)\n"
    assert os.stat(marker).st_mtime_ns >= os.stat("results/a.pt").st_mtime_ns
    assert not os.path.exists(staleness.marker_path("results/b.pt"))
    staleness.mark([], ["results/a.pt", "results/b.pt"])
    assert not os.path.exists(marker)
    text = staleness.summary([stale, absent])
    assert "1 intermediate(s)" in text and "results/a.pt: stale (row: stored 0" in text
    assert "results/b.pt" not in text and staleness.summary([absent]) == ""


def test_first_difference_counts_a_missing_key():
    assert staleness.first_difference({"row": 1}, {"row": 1}) is None
    assert staleness.first_difference({}, {"row": 1}) == "row: stored None, expected 1"


@pytest.mark.parametrize(
    "argv, dry, jobs",
    [
        (["snakemake", "-n"], True, False),
        (["snakemake", "-np", "--cores", "1"], True, False),
        (["snakemake", "--dry-run"], True, False),
        (["snakemake", "--dryrun"], True, False),
        (["snakemake", "-pn"], True, False),
        (["snakemake", "--cores", "2"], False, True),
        (["snakemake", "-c2"], False, True),
        (["snakemake", "-s", "n"], False, True),
        (["snakemake", "-sn"], False, True),  # -s takes the value "n"
        (["snakemake", "--dag"], False, False),
        (["snakemake", "--summary"], False, False),
        (["snakemake", "--unlock"], False, False),
    ],
)
def test_dry_runs_and_commands_that_run_no_job(argv, dry, jobs):
    assert staleness.is_dry_run(argv) is dry
    assert staleness.runs_jobs(argv) is jobs


def test_move_aside(tmp_path):
    path = tmp_path / "model_3.pt"
    path.write_text("new")
    (tmp_path / "model_3.pt.stale").write_text("old")
    assert staleness.move_aside(str(path)) == f"{path}.stale"
    assert not path.exists() and (tmp_path / "model_3.pt.stale").read_text() == "new"
