"""U-Nets the project did not define, written here in torch and exported as plain ONNX.

They differ from :class:`unet_edge.training.model.UNet` on purpose, so that
probing (:mod:`unet_edge.models.probe`) is tested on networks it knows nothing of:

- :class:`SameNet`: depth 3, same padding, one conv + batch norm per level,
  bilinear up-sampling followed by a 1x1 conv, skips *added* (not
  concatenated), raw logits out (2 classes, no softmax);
- :class:`ValidNet`: depth 2, valid convolutions, transposed-conv
  up-sampling, skips centre-cropped with sizes computed at run time, one
  sigmoid channel out.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class SameNet(nn.Module):
    def __init__(self, width: int = 4, depth: int = 3) -> None:
        super().__init__()
        ws = [width * 2**i for i in range(depth + 1)]
        self.stem = nn.Conv2d(1, ws[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ws[i], ws[i + 1], 3, padding=1), nn.BatchNorm2d(ws[i + 1]))
            for i in range(depth)
        )
        self.up = nn.ModuleList(nn.Conv2d(ws[i + 1], ws[i], 1) for i in reversed(range(depth)))
        self.head = nn.Conv2d(ws[0], 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        skips = []
        for block in self.down:
            skips.append(x)
            x = F.relu(block(F.max_pool2d(x, 2)))
        for conv, skip in zip(self.up, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = F.relu(conv(x) + skip)
        return self.head(x)


class ValidNet(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.c0 = nn.Conv2d(1, width, 3)
        self.c1 = nn.Conv2d(width, 2 * width, 3)
        self.b = nn.Sequential(
            nn.Conv2d(2 * width, 4 * width, 3), nn.ReLU(), nn.Conv2d(4 * width, 4 * width, 3)
        )
        self.u1 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.d1 = nn.Conv2d(4 * width, 2 * width, 3)
        self.u0 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.d0 = nn.Conv2d(2 * width, width, 3)
        self.head = nn.Conv2d(width, 1, 1)

    @staticmethod
    def _join(up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        dy = (skip.shape[2] - up.shape[2]) // 2
        dx = (skip.shape[3] - up.shape[3]) // 2
        crop = skip[:, :, dy : dy + up.shape[2], dx : dx + up.shape[3]]
        return torch.cat([crop, up], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = F.relu(self.c0(x))
        s1 = F.relu(self.c1(F.max_pool2d(s0, 2)))
        x = F.relu(self.b(F.max_pool2d(s1, 2)))
        x = F.relu(self.d1(self._join(self.u1(x), s1)))
        x = F.relu(self.d0(self._join(self.u0(x), s0)))
        return torch.sigmoid(self.head(x))


def build(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights (and batch-norm statistics), eval mode."""
    torch.manual_seed(seed)
    net.eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net


def export(net: nn.Module, path: Path, size: int, fixed: bool = False) -> Path:
    """One self-contained ONNX file; dynamic batch, height and width unless ``fixed``."""
    axes = None if fixed else {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}}
    torch.onnx.export(
        net,
        (torch.zeros(1, 1, size, size),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    return path
