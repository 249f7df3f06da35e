"""Preemption: a killed training resumes from its epoch state and ends with the same weights
as an uninterrupted run (CPU); the streamed and the device-resident paths agree; the speed
options run."""

import numpy as np
import pytest
import torch

from curvmia.train import TrainCompute, TrainData, random_resized_crop, train_model

CFG = {
    "arch": "cifar_resnet",
    "model_kwargs": {"width": 4, "layers": [1]},
    "epochs": 5,
    "batch_size": 8,
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 5e-4,
    "milestones": [0.4, 0.8],
    "gamma": 0.1,
    "pad": 1,
    "flip": True,
    "seed": 0,
}


class Killed(Exception):
    pass


def _data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (80, 1, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, 80).astype(np.int64)
    return x, y


def _run(cfg=CFG, log=lambda s: None, **kw):
    x, y = _data()
    kw.setdefault("indices", np.arange(3, 60, 1))
    return train_model(
        TrainData(x, y, x[60:], y[60:], np.array([0.5]), np.array([0.25]), num_classes=3),
        cfg=cfg,
        seed=7,
        device=torch.device("cpu"),
        log=log,
        **kw,
    )


def _equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_killed_training_resumes_to_identical_weights(tmp_path):
    ref, ref_stats = _run()
    state = tmp_path / "model_3.pt.resume.pt"
    seen = []

    def dying_log(msg):
        seen.append(msg)
        if msg.startswith("epoch 3/"):
            raise Killed  # the job dies after epoch 3 was checkpointed

    with pytest.raises(Killed):
        _run(resume_path=state, log=dying_log)
    assert state.exists()
    logs = []
    resumed, stats = _run(resume_path=state, log=logs.append)
    assert any("resumed" in m and "after epoch 3" in m for m in logs)
    assert [m.split()[1] for m in logs if m.startswith("epoch")] == ["4/5", "5/5"]
    assert _equal(ref, resumed)
    assert stats["test_acc"] == ref_stats["test_acc"]
    assert not state.exists()  # intermediate state removed on success


def _killed_after_epoch_2(state, **kw):
    """Train until epoch 2 has written its resume state at ``state``, then die."""

    def dying_log(msg):
        if msg.startswith("epoch 2/"):
            raise Killed

    with pytest.raises(Killed):
        _run(resume_path=state, log=dying_log, **kw)
    assert state.exists()


@pytest.mark.parametrize(
    "other",
    [
        {"cfg": {**CFG, "lr": 0.01}},
        {"indices": np.arange(4, 61, 1)},
        {"identity": {"row": 3, "data_hash": "other"}},
    ],
    ids=["other recipe", "same size other members", "other data"],
)
def test_resume_state_of_another_recipe_subset_or_dataset_is_not_used(tmp_path, other):
    """The key holds the recipe, the member indices and the checkpoint identity."""
    state = tmp_path / "m.resume.pt"
    _killed_after_epoch_2(state, **other)
    logs = []
    model, _ = _run(resume_path=state, log=logs.append)
    assert any("starting afresh" in m for m in logs)
    assert _equal(model, _run()[0])


def test_corrupt_resume_state_is_set_aside(tmp_path):
    state = tmp_path / "m.resume.pt"
    _killed_after_epoch_2(state)
    state.write_bytes(state.read_bytes()[:1000])  # truncated, as by a full disk
    logs = []
    model, _ = _run(resume_path=state, log=logs.append)
    assert any(m.startswith(f"WARNING: {state}: corrupt resume state") for m in logs), logs
    assert (tmp_path / "m.resume.pt.corrupt").stat().st_size == 1000
    assert _equal(model, _run()[0])  # trained afresh, same weights


def test_streamed_loader_equals_resident():
    resident, _ = _run()
    streamed, _ = _run(compute=TrainCompute(resident_max_gib=0.0, workers=0))
    assert _equal(resident, streamed)


def test_speed_options_train():
    cfg = {**CFG, "epochs": 1, "channels_last": True, "amp": "bf16", "random_resized_crop": True}
    model, stats = _run(cfg=cfg)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0.0 <= stats["test_acc"] <= 1.0


def test_random_resized_crop_full_area_is_identity():
    x = torch.rand(4, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    out = random_resized_crop(x, gen, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    half = random_resized_crop(x, gen, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    assert half.shape == x.shape and not torch.allclose(half, x)


def test_sigkilled_training_script_resumes(tmp_path):
    """The real thing: SIGKILL the training script mid-run, rerun it, same weights."""
    import json
    import signal
    import subprocess
    import sys

    from _util import REPO, subprocess_env

    from curvmia.data import prepare
    from curvmia.io import save_npz
    from curvmia.masks import make_masks

    prepare("digits", tmp_path / "d", test_size=1397, split_seed=0)
    save_npz(tmp_path / "masks.npz", masks=make_masks(400, 2, 0.5, 0, True))
    cfg = {**CFG, "epochs": 40, "batch_size": 32}

    def cmd(out):
        return [
            sys.executable,
            str(REPO / "scripts" / "train.py"),
            "--data",
            str(tmp_path / "d"),
            "--masks",
            str(tmp_path / "masks.npz"),
            "--row",
            "1",
            "--train",
            json.dumps(cfg),
            "--device",
            "cpu",
            "--out",
            str(out),
        ]

    env = subprocess_env()
    ref = tmp_path / "ref.pt"
    subprocess.run(cmd(ref), check=True, capture_output=True, env=env)
    out = tmp_path / "m.pt"
    proc = subprocess.Popen(cmd(out), stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("epoch 3/"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    assert (tmp_path / "m.pt.resume.pt").exists()
    rerun = subprocess.run(cmd(out), check=True, capture_output=True, text=True, env=env)
    assert "resumed from" in rerun.stdout
    a = torch.load(ref, weights_only=True)["state_dict"]
    b = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "m.pt.resume.pt").exists()
