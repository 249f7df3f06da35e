"""Model construction through timm, with a CIFAR-style ResNet family registered in it.

The paper's CIFAR models are ResNets with a 3×3 stride-1 stem and no max-pool.
Registering that family in timm's registry lets a config name
``cifar_resnet18`` exactly as it names any stock timm model (``resnet50``,
``vit_tiny_patch16_224``, …); ``build_model`` is the single entry point.
"""

from __future__ import annotations

import importlib
import logging

import timm
import torch
from timm.models import register_model
from torch import nn

from . import sonnet_resnet  # noqa: F401  (registers sonnet_resnet50 in timm)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and an identity or 1×1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with a 3×3 stride-1 stem, no max-pool, ``len(layers)`` stages.

    ``width`` is the first stage's channel count; each later stage doubles it
    and halves the resolution.  ``layers`` gives the blocks per stage.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        width: int = 64,
        num_classes: int = 10,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if width < 1 or not layers or any(int(n) < 1 for n in layers):
            raise ValueError(
                f"width must be >= 1 and layers a non-empty list of counts >= 1,"
                f" got width={width}, layers={list(layers)}"
            )
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in = width
        for i, n in enumerate(layers):
            c_out = width * 2**i
            for j in range(n):
                blocks.append(BasicBlock(c_in, c_out, 2 if (j == 0 and i > 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*blocks)
        self.num_features = c_in
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _cifar_resnet(default_layers: tuple[int, ...], default_width: int, **kwargs) -> CifarResNet:
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)  # timm's generic keywords; a CIFAR ResNet has none of them
    if kwargs.pop("pretrained", False):
        raise ValueError("CIFAR ResNets have no pretrained weights")
    layers = tuple(kwargs.pop("layers", default_layers))
    width = kwargs.pop("width", default_width)
    return CifarResNet(layers=layers, width=width, **kwargs)


@register_model
def cifar_resnet(pretrained: bool = False, **kwargs) -> CifarResNet:
    """CIFAR-stem ResNet with free ``layers`` (default [1, 1]) and ``width`` (default 16)."""
    return _cifar_resnet((1, 1), 16, pretrained=pretrained, **kwargs)


@register_model
def cifar_resnet10(pretrained: bool = False, **kwargs) -> CifarResNet:
    """CIFAR-stem ResNet-10: one basic block per stage, width 64."""
    return _cifar_resnet((1, 1, 1, 1), 64, pretrained=pretrained, **kwargs)


@register_model
def cifar_resnet18(pretrained: bool = False, **kwargs) -> CifarResNet:
    """The paper's CIFAR ResNet-18: [2, 2, 2, 2] basic blocks, width 64."""
    return _cifar_resnet((2, 2, 2, 2), 64, pretrained=pretrained, **kwargs)


@register_model
def cifar_resnet34(pretrained: bool = False, **kwargs) -> CifarResNet:
    """CIFAR-stem ResNet-34: [3, 4, 6, 3] basic blocks, width 64."""
    return _cifar_resnet((3, 4, 6, 3), 64, pretrained=pretrained, **kwargs)


def check_arch(name: str) -> None:
    """Raise a clear error when ``name`` is not a timm model name."""
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:8]
        raise ValueError(
            f"train.arch: unknown architecture {name!r} (not in timm's registry); "
            f"similar names: {close}"
        )


def build_model(
    arch: str, num_classes: int, in_chans: int, model_kwargs: dict | None = None
) -> nn.Module:
    """Build any timm model (ours included), randomly initialised, never downloading weights."""
    check_arch(arch)
    return timm.create_model(
        arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **(model_kwargs or {})
    )


def count_params(model: nn.Module) -> int:
    """Number of parameters (elements) of ``model``: it identifies the architecture built."""
    return sum(p.numel() for p in model.parameters())


def check_model_kwargs(
    arch: str,
    model_kwargs: dict | None,
    key: str = "train.model_kwargs",
    num_classes: int = 10,
    in_chans: int = 3,
    dp: bool = False,
) -> int:
    """Build the model on the meta device (no memory, no weights) to check every keyword.

    A misspelt keyword (``widht``) or an impossible shape (``width: -8``) raises a
    ``ValueError`` naming ``key``, before any job; returns the parameter count.
    """
    try:
        with torch.device("meta"):
            model = build_model(arch, num_classes, in_chans, model_kwargs)
            if dp:
                model = dp_compatible(model)
    except (TypeError, ValueError, RuntimeError, AssertionError, KeyError) as e:
        raise ValueError(f"{key}: {model_kwargs!r} does not build {arch!r}: {e}") from None
    return count_params(model)


def import_opacus(name: str = "opacus"):
    """Import an Opacus module without the root-logger handler its import installs.

    ``opacus.utils.module_utils`` calls ``logging.basicConfig`` at import time; in Snakemake's
    process (the model checks import it while the Snakefile is parsed) that handler printed
    every console and ``.snakemake/log`` line a second time, with a timestamp prefix.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return importlib.import_module(name)
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def dp_compatible(model: nn.Module) -> nn.Module:
    """Replace layers DP-SGD cannot train per sample (BatchNorm → GroupNorm), as Opacus does."""
    ModuleValidator = import_opacus("opacus.validators").ModuleValidator

    fixed = ModuleValidator.fix(model)
    errors = ModuleValidator.validate(fixed, strict=False)
    if errors:
        raise ValueError(f"dp_sweep.train.arch: not trainable with DP-SGD: {errors[:3]}")
    return fixed
