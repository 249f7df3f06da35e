"""Tensor-level image transforms: uint8 to float, per-channel normalisation, and the
batched random crop and flip of training augmentation (seeded by a ``torch.Generator``)."""

from __future__ import annotations

import numpy as np
import torch


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 in [0, 1]."""
    return images_u8.to(torch.float32).div_(255.0)


def normalize(x: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """Per-channel normalisation of float images in [0, 1]."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_crop_flip(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) and horizontal flip, no per-image loop.

    ``x`` is (B, C, H, W); draws come from ``generator`` so training is seeded.
    """
    b, _, h, w = x.shape
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        cidx = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[bidx, cidx, rows, cols]
    if flip:
        do = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(do[:, None, None, None], x.flip(3), x)
    return x
