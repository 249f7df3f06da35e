"""Input-loss curvature estimators.

``zo_curvature`` is the paper's zero-order (black-box) score (SPEC §3): for
``niter`` iterations draw two independent Rademacher tensors r_v, r_u shaped
like x, set v = h(r_v + 1e-7), u = h(r_u + 1e-7), and average
|l(x+v+u) − l(x−v+u) − l(x+v−u) + l(x−v−u)| / (4h), with l the per-sample
cross-entropy at the true label.  It estimates h·E|r_uᵀ H r_v|, a tr(H²)-like
quantity, not tr(H).  The four perturbed copies of a batch go through the model
as one forward batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def rademacher(
    shape: torch.Size, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    """±1 tensor drawn on the CPU (so the draws do not depend on the device)."""
    r = torch.randint(0, 2, shape, generator=generator, dtype=torch.int64)
    return (2 * r - 1).to(dtype)


@torch.no_grad()
def zo_curvature(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    h: float = 1e-3,
    niter: int = 10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Zero-order curvature score of each sample, shape (B,), in x's dtype.

    ``x`` is the normalised input batch, ``y`` the true labels; the model must
    already be in eval mode.  Per iteration r_v is drawn before r_u, each with
    x's shape, from ``generator`` on the CPU.
    """
    if niter < 1:
        raise ValueError(f"niter must be >= 1, got {niter}")
    b = x.shape[0]
    y4 = y.repeat(4)
    acc = torch.zeros(b, dtype=x.dtype, device=x.device)
    for _ in range(niter):
        v = h * (rademacher(x.shape, generator, x.dtype).to(x.device) + 1e-7)
        u = h * (rademacher(x.shape, generator, x.dtype).to(x.device) + 1e-7)
        batch = torch.cat([x + v + u, x - v + u, x + v - u, x - v - u])
        loss = F.cross_entropy(model(batch), y4, reduction="none").view(4, b)
        q = loss[0] - loss[1] - loss[2] + loss[3]
        acc += torch.abs(q / (4 * h))
    return acc / niter
