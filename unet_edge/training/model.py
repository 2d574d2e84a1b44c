"""The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

Valid 3x3 convolutions + ReLU, 2x2 max-pool, 2x2 up-convolution that halves
the channels, centre-crop of the skip connection and concatenation, 1x1 head.
With the defaults (1 channel, 2 classes, depth 4, width 64) it has 31,030,658
parameters and maps a 572x572 tile to 388x388.

The crop of each skip connection is a constant number of pixels per side
(it does not depend on the input size), so it is written as a static slice:
the graph exports with dynamic height and width and no shape arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Padding, UNetConfig
from ..geometry import Geometry


class _Block(nn.Sequential):
    """``convs`` convolutions, each followed by optional batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, config: UNetConfig) -> None:
        layers: list[nn.Module] = []
        pad = config.kernel_size // 2 if config.padding is Padding.SAME else 0
        for i in range(config.convs_per_level):
            layers.append(
                nn.Conv2d(
                    cin if i == 0 else cout,
                    cout,
                    config.kernel_size,
                    padding=pad,
                    bias=not config.batch_norm,
                )
            )
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def skip_crops(config: UNetConfig) -> list[int]:
    """Pixels cropped per side from each encoder level's skip (top level first).

    The sub-network below level ``i`` is itself a U-Net of depth
    ``depth - i - 1`` applied at half resolution; it shrinks its input by its
    halo on each side, which is ``2 * halo`` pixels at level ``i``.
    """
    if config.padding is Padding.SAME:
        return [0] * config.depth
    crops = []
    for level in range(config.depth):
        sub = Geometry(
            config.depth - level - 1, Padding.VALID, config.convs_per_level, config.kernel_size
        )
        crops.append(2 * sub.halo)
    return crops


class UNet(nn.Module):
    """U-Net returning logits of shape (N, classes, H_out, W_out)."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        c = self.config
        widths = [c.base_width * 2**i for i in range(c.depth + 1)]
        self.down = nn.ModuleList()
        cin = c.in_channels
        for w in widths[:-1]:
            self.down.append(_Block(cin, w, c))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _Block(widths[-2] if c.depth else c.in_channels, widths[-1], c)
        self.dropout = nn.Dropout2d(c.dropout) if c.dropout > 0 else nn.Identity()
        self.up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level in reversed(range(c.depth)):
            self.up.append(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            self.up_blocks.append(_Block(2 * widths[level], widths[level], c))
        self.head = nn.Conv2d(widths[0], c.classes, 1)
        self.crops = skip_crops(c)
        self._init_weights()

    def _init_weights(self) -> None:
        # The paper: Gaussian with std sqrt(2 / N), N = incoming nodes of a neuron (He init).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def geometry(self) -> Geometry:
        return Geometry.from_config(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottleneck(x))
        for up, block in zip(self.up, self.up_blocks, strict=True):
            x = up(x)
            skip = skips.pop()
            c = self.crops[len(skips)]
            if c:
                skip = skip[:, :, c:-c, c:-c]
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_gflops(config: UNetConfig, height: int, width: int) -> float:
    """GFLOP (2 x multiply-adds of all convolutions) for one tile of the given size.

    Computed by tracing the sizes through the network on the meta device, so
    it needs no memory and no real compute.
    """
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d))
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, nn.Conv2d):
            macs = out.numel() * mod.in_channels * k // mod.groups
        else:  # each input pixel scatters into k outputs per output channel
            macs = inp[0].numel() * mod.out_channels * k
        total += 2 * macs

    with torch.device("meta"):
        model = UNet(config)
    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model(torch.empty(1, config.in_channels, height, width, device="meta"))
    for h in handles:
        h.remove()
    return total / 1e9
