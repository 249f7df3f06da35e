import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def pytest_configure(config):
    # Pin threads so CPU results are reproducible and the 2-core machine is not oversubscribed.
    import torch

    torch.set_num_threads(int(os.environ.get("CURVMIA_TEST_THREADS", "1")))
