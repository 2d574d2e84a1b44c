"""The tile-choice cost model: fewest computed pixels, within a memory budget."""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path

import pytest

from unet_edge import cost, tiling
from unet_edge.config import UNetConfig
from unet_edge.errors import ConfigError, InputError
from unet_edge.geometry import Geometry
from unet_edge.runtime import Segmenter

PAPER = UNetConfig()
G = Geometry.from_config(PAPER)


def _budgeted(shape: tuple[int, int], budget: int, max_tile: int) -> tuple[int, int]:
    return tiling.choose_tile(
        shape, G, max_tile, tile_bytes=partial(cost.activation_bytes, PAPER), memory_budget=budget
    )


def _brute_force(shape: tuple[int, int], budget: int, max_tile: int) -> int:
    """Fewest computed pixels over every legal tile pair within the budget."""
    best = None
    fits = {t: cost.activation_bytes(PAPER, t, t) for t in G.legal_inputs(max_tile)}
    for ty, tx in itertools.product(G.legal_inputs(max_tile), repeat=2):
        if G.stride(ty) == 0 or G.stride(tx) == 0:
            continue
        if min(fits[ty], fits[tx]) > budget:  # a lower bound: skip the plan
            continue
        p = tiling.plan(shape, G, (ty, tx))
        if cost.activation_bytes(PAPER, *p.tile_shape) > budget:
            continue
        px = p.computed_pixels()
        best = px if best is None else min(best, px)
    assert best is not None
    return best


def test_activation_estimate_grows_with_tile_and_batch() -> None:
    sizes = G.legal_inputs(1400)
    est = [cost.activation_bytes(PAPER, t, t) for t in sizes]
    assert all(a < b for a, b in itertools.pairwise(est))
    assert cost.activation_bytes(PAPER, 572, 572, batch=3) == 3 * est[sizes.index(572)]
    # At least the largest single map (64 x 570 x 570 floats after the first conv) and its input;
    # at most every map of the network at once.
    layers = list(cost.layers(PAPER, 572, 572))
    first = layers[0]
    assert first.out_hw == (570, 570) and first.cout == 64
    assert est[sizes.index(572)] >= 4 * (64 * 570 * 570 + 572 * 572)
    everything = sum(lyr.cout * lyr.out_hw[0] * lyr.out_hw[1] for lyr in layers) + 572 * 572
    assert est[sizes.index(572)] <= 4 * everything
    with pytest.raises(InputError):
        cost.activation_bytes(PAPER, 570, 570)  # not a legal tile


@pytest.mark.parametrize("shape", [(4096, 4096), (700, 3000), (300, 300)])
@pytest.mark.parametrize("budget_mib", [300, 1500])
def test_budgeted_choice_is_the_cheapest_tile_that_fits(
    shape: tuple[int, int], budget_mib: int
) -> None:
    budget = budget_mib << 20
    ty, tx = _budgeted(shape, budget, max_tile=1200)
    p = tiling.plan(shape, G, (ty, tx))
    assert cost.activation_bytes(PAPER, *p.tile_shape) <= budget
    assert p.computed_pixels() == _brute_force(shape, budget, max_tile=1200)


def test_more_memory_never_costs_more_work() -> None:
    shape = (4096, 4096)
    work = [
        tiling.plan(shape, G, _budgeted(shape, mib << 20, 2400)).computed_pixels()
        for mib in (250, 500, 1000, 2000, 4000, 8000)
    ]
    assert all(a >= b for a, b in itertools.pairwise(work))
    assert work[0] > work[-1]  # the budget binds: small budgets give small, wasteful tiles
    # Without a budget the choice is the old one (max_tile only).
    assert tiling.choose_tile(shape, G, 1024) == tiling.choose_tile(
        shape, G, 1024, tile_bytes=None, memory_budget=1
    )


def test_budget_below_smallest_tile_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"memory budget of 10 MiB.*smallest, 204x204"):
        _budgeted((1000, 1000), 10 << 20, 1024)


def test_segmenter_picks_tiles_within_its_budget(tiny_onnx: Path) -> None:
    with Segmenter(tiny_onnx, max_tile=2000, memory_budget=None) as free:
        big = free.plan_for((3000, 3000)).tile_shape
    arch = free.info.architecture
    need = cost.activation_bytes(arch, *big)
    with Segmenter(tiny_onnx, max_tile=2000, memory_budget=need // 4) as tight:
        small = tight.plan_for((3000, 3000)).tile_shape
    assert small[0] * small[1] < big[0] * big[1]
    assert cost.activation_bytes(arch, *small) <= need // 4
    with Segmenter(tiny_onnx, max_tile=2000, memory_budget=need // 4, batch_size=2) as b2:
        assert cost.activation_bytes(arch, *b2.plan_for((3000, 3000)).tile_shape, batch=2) <= (
            need // 4
        )
