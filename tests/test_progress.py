"""Progress lines with the time left, driven by an injected clock (no wall-clock waits)."""

import re

import numpy as np
from PIL import Image

from curvmia.imagefolder import write_image_memmap
from curvmia.progress import Progress, hms


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_hms():
    assert [hms(x) for x in (0, 59.6, 61, 3600 * 26 + 62)] == [
        "0:00:00",
        "0:01:00",
        "0:01:01",
        "26:01:02",
    ]


def test_progress_logs_rate_and_time_left_at_most_every_interval():
    clock, lines = FakeClock(), []
    p = Progress(1000, "scoring", lines.append, every=60.0, clock=clock)
    for _ in range(9):  # 9 x 10 samples at 10 s each: a line once 60 s have passed
        clock.t += 10.0
        p.advance(10)
    assert lines == [
        "scoring: 60/1000 samples (6%), 1 samples/s, elapsed 0:01:00, about 0:15:40 left"
    ]
    clock.t += 20.0  # the last line was at 60 s: 50 s ago, no line yet
    p.advance(10)
    assert len(lines) == 1
    clock.t += 10.0  # 120 s for 100 samples: 900 left at 0.833/s = 1080 s
    p.advance(0)
    assert lines[-1] == (
        "scoring: 100/1000 samples (10%), 0.833 samples/s, elapsed 0:02:00, about 0:18:00 left"
    )
    p.advance(5000)  # never past the total; the last unit always logs
    assert lines[-1].startswith("scoring: 1000/1000 samples (100%)")
    assert lines[-1].endswith("about 0:00:00 left")


def test_an_imagenet_sized_job_logs_at_least_once_a_minute():
    clock, lines, stamps = FakeClock(), [], []
    p = Progress(1_281_167, "train_images.npy: decoding", lines.append, unit="images", clock=clock)
    log_at = lines.append

    def log(s):
        stamps.append(clock.t)
        log_at(s)

    p.log = log
    for _ in range(1_281_167 // 500):  # 500 images per 7 s step
        clock.t += 7.0
        p.advance(500)
    gaps = np.diff([1000.0, *stamps])
    assert len(stamps) > 100 and gaps.max() <= 60.0
    left = [float(x) for x in re.findall(r"about (\d+):", lines[0])]
    assert left and left[0] >= 4  # hours left at the start (about 5 h in all)


def test_image_decoding_reports_progress(tmp_path):
    files = []
    for i in range(6):
        f = tmp_path / f"{i}.png"
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(f)
        files.append(f)
    clock, lines = FakeClock(), []

    def tick():
        clock.t += 20.0  # every image decode reads the clock once: 20 s per image
        return clock.t

    write_image_memmap(files, tmp_path / "x.npy", size=8, resize=10, log=lines.append, clock=tick)
    assert len(lines) == 3  # at 40 s (first line after >= 30 s), 80 s, and the end
    assert lines[-1].startswith("x.npy: decoding: 6/6 images (100%)")
    assert re.search(
        r"2/6 images \(33%\), 0\.05 images/s, elapsed 0:00:40, about 0:01:20 left", lines[0]
    )
    assert np.load(tmp_path / "x.npy").shape == (6, 3, 8, 8)


def test_training_logs_batches_done_and_time_left():
    import torch
    from test_models_train import CFG

    from curvmia.train import TrainData, train_model

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, 40).astype(np.int64)
    lines = []
    cfg = {**CFG, "epochs": 2, "batch_size": 16}
    train_model(
        TrainData(x[:32], y[:32], x[32:], y[32:], np.array([0.5]), np.array([0.25]), 3),
        cfg=cfg,
        seed=0,
        device=torch.device("cpu"),
        log=lines.append,
    )
    prog = [s for s in lines if s.startswith("training: ")]
    # 2 epochs x 2 batches of 16; the last batch always logs, with nothing left
    assert prog[-1].startswith("training: 4/4 batches (100%)") and prog[-1].endswith(
        "about 0:00:00 left"
    )
