"""Sonnet's ResNet-50 (v1) in PyTorch, registered in timm as ``sonnet_resnet50``.

Feldman & Zhang trained their ImageNet models with ``snt.nets.ResNet50`` (Sonnet 2,
TensorFlow).  Its layers are those of timm's ``resnet50`` (stride in the 3×3 convolution
of each bottleneck, 1×1 projection shortcuts, BatchNorm eps 1e-5), so this model keeps
timm's parameter names; what differs is one padding.  Sonnet's convolutions pad
explicitly with ``snt.pad.same`` — ``(k - 1)//2`` before and ``k//2`` after, whatever the
stride or input size: for the odd kernels here PyTorch's symmetric ``k//2`` (checked in
the dm-sonnet 2.0.0 and 2.0.2 sources, whose ResNet is the same) — but the stem's max-pool
is ``tf.nn.max_pool2d(..., padding="SAME")``, TensorFlow's asymmetric SAME: on an
even-sized map its one padded row and column go to the bottom/right, where PyTorch's
``MaxPool2d(3, 2, 1)`` pads both sides and so shifts every window by one pixel.  The
max-pool here pads explicitly with :class:`SamePad` instead, so a converted checkpoint
computes TensorFlow's function at any input size.
"""

from __future__ import annotations

import torch
from timm.models import register_model
from torch import nn
from torch.nn import functional as F


class SamePad(nn.Module):
    """TensorFlow ``SAME`` padding for a ``kernel`` × ``kernel`` window at ``stride``
    (``kernel >= stride``): the total ``((n + s - 1)//s - 1)·s + k - n`` per axis, its
    floor half before and the rest after.

    Pure tensor-shape arithmetic (no ``max``/``math.ceil``), so torch.fx can trace it and
    scoring's Conv-BN folding still applies to the convolutions it precedes.
    """

    def __init__(self, kernel: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        if kernel < stride:
            raise ValueError(f"SamePad: kernel {kernel} < stride {stride} is not supported")
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        h, w = x.shape[-2], x.shape[-1]
        ph = ((h + s - 1) // s - 1) * s + k - h
        pw = ((w + s - 1) // s - 1) * s + k - w
        return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=self.value)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, value={self.value}"


class SonnetBottleneck(nn.Module):
    """Sonnet's ``BottleNeckBlockV1``: 1×1 → 3×3 (stride) → 1×1, ReLU after the sum."""

    def __init__(self, c_in: int, channels: int, stride: int, projection: bool) -> None:
        super().__init__()
        mid = channels // 4
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        # snt.pad.same: 1 before, 1 after at any stride (not TensorFlow's "SAME")
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(c_in, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )
            if projection
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class SonnetResNet50(nn.Module):
    """``snt.nets.ResNet50(num_classes)`` with timm ``resnet50``'s parameter names."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, **_: object) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)  # snt.pad.same: 3 and 3
        self.bn1 = nn.BatchNorm2d(64)
        # tf.nn.max_pool2d(padding="SAME"): padded cells never win the max
        self.pool_pad = SamePad(3, 2, value=float("-inf"))
        self.maxpool = nn.MaxPool2d(3, 2, 0)
        c_in = 64
        for i, (n, channels, stride) in enumerate(
            zip((3, 4, 6, 3), (256, 512, 1024, 2048), (1, 2, 2, 2), strict=True)
        ):
            blocks = []
            for j in range(n):
                blocks.append(SonnetBottleneck(c_in, channels, stride if j == 0 else 1, j == 0))
                c_in = channels
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = c_in
        self.fc = nn.Linear(c_in, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before global pooling (N, 2048, H/32, W/32)."""
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(self.pool_pad(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))


@register_model
def sonnet_resnet50(pretrained: bool = False, **kwargs) -> SonnetResNet50:
    """Sonnet 2's ResNet-50 v1 (Feldman & Zhang's ImageNet models), TF SAME max-pool."""
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    if pretrained:
        raise ValueError("sonnet_resnet50 has no pretrained weights (convert a checkpoint)")
    return SonnetResNet50(**kwargs)
