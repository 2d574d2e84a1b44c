from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from unet_edge.config import UNetConfig  # noqa: E402
from unet_edge.training.model import UNet, conv_gflops, count_parameters, skip_crops  # noqa: E402


def test_paper_network() -> None:
    with torch.device("meta"):
        net = UNet()
        out = net(torch.empty(1, 1, 572, 572))
    assert count_parameters(net) == 31_030_658
    assert tuple(out.shape) == (1, 2, 388, 388)
    assert skip_crops(UNetConfig()) == [88, 40, 16, 4]  # 568->392, 280->200, 136->104, 64->56
    assert conv_gflops(UNetConfig(), 572, 572) == pytest.approx(300.9, abs=0.1)


def test_options_change_the_network() -> None:
    base = count_parameters(UNet(UNetConfig(base_width=4)))
    bn = UNet(UNetConfig(base_width=4, batch_norm=True))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())
    assert count_parameters(bn) != base
    drop = UNet(UNetConfig(base_width=4, dropout=0.5))
    assert any(isinstance(m, torch.nn.Dropout2d) for m in drop.modules())
    same = UNet(UNetConfig(base_width=4, padding="same", depth=3))
    assert same(torch.zeros(1, 1, 48, 40)).shape == (1, 2, 48, 40)
    rgb = UNet(UNetConfig(in_channels=3, classes=5, depth=2, base_width=4))
    assert rgb(torch.zeros(2, 3, 140 - 96 + 32, 76)).shape[:2] == (2, 5)
