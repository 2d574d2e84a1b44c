from __future__ import annotations

import importlib.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unet_edge.errors import ConfigError, InputError
from unet_edge.geometry import Geometry


def test_paper_geometry() -> None:
    g = Geometry()
    assert g.halo == 92
    assert g.alignment == 16
    assert g.min_input == 188
    assert g.output_size(572) == 388
    assert g.output_size(188) == 4
    assert g.legal_inputs(620) == [188 + 16 * k for k in range(28)]
    assert g.stride(572) == 384  # not 388: 388 is not a multiple of 16
    assert g.input_for_output(388) == 572
    assert g.input_for_output(389) == 588


@pytest.mark.parametrize("n", [1, 187, 189, 573, 580])
def test_illegal_sizes_name_the_nearest_legal(n: int) -> None:
    g = Geometry()
    assert not g.is_legal(n)
    with pytest.raises(InputError, match="legal: 188 \\+ 16k"):
        g.output_size(n)


def test_check_tile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="use 556 or 572"):
        Geometry().check_tile(570)


def test_same_padding() -> None:
    g = Geometry(depth=4, padding="same")
    assert g.network_output_size(512) == 512
    assert g.output_size(512) == 512 - 2 * g.halo
    assert g.halo >= 92  # at least the receptive-field radius of the convolutions
    assert not g.is_legal(500)


def test_padding_typo_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'valid'"):
        Geometry(padding="vaild")


# The checks against the torch model skip without the [train] extra; the rest of the module runs.
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="comparing with the torch model needs the [train] extra (torch)",
)


def _torch_out(depth: int, padding: str, n: int, m: int) -> tuple[int, int]:
    import torch

    from unet_edge.config import UNetConfig
    from unet_edge.training.model import UNet

    with torch.device("meta"):
        net = UNet(UNetConfig(depth=depth, base_width=1, padding=padding))
        y = net(torch.empty(1, 1, n, m))
    return int(y.shape[2]), int(y.shape[3])


@needs_torch
@settings(max_examples=60, deadline=None)
@given(depth=st.integers(0, 5), k=st.integers(0, 40), j=st.integers(0, 40))
def test_geometry_matches_torch_valid(depth: int, k: int, j: int) -> None:
    g = Geometry(depth=depth)
    n, m = g.min_input + k * g.alignment, g.min_input + j * g.alignment
    assert _torch_out(depth, "valid", n, m) == (g.network_output_size(n), g.network_output_size(m))
    assert g.network_output_size(n) == n - 2 * g.halo


@needs_torch
@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 4), n=st.integers(1, 400))
def test_illegal_valid_sizes_break_torch(depth: int, n: int) -> None:
    """Sizes the geometry rejects are exactly those where the torch graph cannot run."""
    g = Geometry(depth=depth)
    try:
        shape = _torch_out(depth, "valid", n, g.min_input)
        ok = shape[0] >= 1
    except RuntimeError:
        ok = False
    if g.is_legal(n):
        assert ok and shape[0] == g.network_output_size(n)
    elif ok:  # torch floors odd maps at pooling: it runs, but the output no longer fits
        assert shape[0] != n - 2 * g.halo


@needs_torch
@settings(max_examples=30, deadline=None)
@given(depth=st.integers(0, 5), k=st.integers(1, 30))
def test_geometry_matches_torch_same(depth: int, k: int) -> None:
    g = Geometry(depth=depth, padding="same")
    n = k * g.alignment
    assert _torch_out(depth, "same", n, n) == (n, n)
