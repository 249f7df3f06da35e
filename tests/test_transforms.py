"""The tensor transforms of training and scoring: uint8 to float, normalisation, and the
batched random crop and flip (curvmia/transforms.py)."""

import numpy as np
import pytest
import torch

from curvmia.transforms import normalize, random_crop_flip, to_float


@pytest.mark.parametrize("pad", [1, 2])
def test_random_crop_flip_matches_per_image_reference(pad):
    x = torch.arange(5 * 2 * 6 * 6, dtype=torch.float32).reshape(5, 2, 6, 6)
    out = random_crop_flip(x, pad, True, torch.Generator().manual_seed(3))
    # the same draws, applied one image at a time
    g = torch.Generator().manual_seed(3)
    dy = torch.randint(0, 2 * pad + 1, (5,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (5,), generator=g)
    flip = torch.rand(5, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    for i in range(5):
        ref = padded[i, :, dy[i] : dy[i] + 6, dx[i] : dx[i] + 6]
        if flip[i]:
            ref = ref.flip(-1)
        torch.testing.assert_close(out[i], ref, rtol=0, atol=0)
    # no augmentation is the identity
    same = random_crop_flip(x, 0, False, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x)


def test_random_crop_flip_without_padding_draws_only_the_flips():
    """pad = 0: no crop offsets are drawn, so the flips are the generator's first draws."""
    x = torch.arange(8 * 1 * 2 * 3, dtype=torch.float32).reshape(8, 1, 2, 3)
    out = random_crop_flip(x, 0, True, torch.Generator().manual_seed(3))
    flip = torch.rand(8, generator=torch.Generator().manual_seed(3)) < 0.5
    assert 0 < int(flip.sum()) < 8  # both branches are seen
    for i in range(8):
        torch.testing.assert_close(out[i], x[i].flip(-1) if flip[i] else x[i], rtol=0, atol=0)


def test_transforms_keep_every_tensor_on_the_images_device():
    """The meta device stands in for a GPU: a helper tensor left on the CPU is refused there."""
    x = torch.empty(5, 2, 6, 6, device="meta")
    for out in (
        normalize(x, np.array([0.5, 0.2]), np.array([0.25, 0.1])),
        random_crop_flip(x, 2, True, torch.Generator().manual_seed(0)),
        random_crop_flip(x, 0, True, torch.Generator().manual_seed(0)),
    ):
        assert out.device == x.device and out.shape == x.shape and out.dtype == x.dtype


def test_normalize_and_to_float_by_hand():
    u8 = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)  # (1, 2, 1, 2)
    x = to_float(u8)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, torch.tensor([[[[0.0, 1.0]], [[0.2, 0.4]]]]))
    z = normalize(x, np.array([0.5, 0.2]), np.array([0.25, 0.1]))
    assert z.dtype == torch.float32 and z.shape == x.shape
    torch.testing.assert_close(z, torch.tensor([[[[-2.0, 2.0]], [[0.0, 2.0]]]]))
    z64 = normalize(x.double(), [0.5, 0.2], [0.25, 0.1])
    assert z64.dtype == torch.float64


def test_random_crop_flip_flips_only_draws_below_one_half():
    """An image flips when its uniform draw is below 0.5; a draw of exactly 0.5 (one in 2²⁴:
    seed 479's draw 1395) keeps it, so the flips of a long training are pinned to the bit."""
    g = torch.Generator().manual_seed(479)
    torch.rand(1390, generator=g)
    state = g.get_state()
    u = torch.rand(8, generator=g)
    assert u[5] == 0.5 and 0 < int((u < 0.5).sum()) < 7
    g.set_state(state)
    x = torch.arange(8 * 2, dtype=torch.float32).reshape(8, 1, 1, 2)
    out = random_crop_flip(x, 0, True, g)
    for i in range(8):
        torch.testing.assert_close(out[i], x[i].flip(-1) if u[i] < 0.5 else x[i], rtol=0, atol=0)
