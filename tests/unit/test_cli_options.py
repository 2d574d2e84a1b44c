"""The options the commands share (unet_edge/cli/options.py): sizes, pixel counts, tiles,
normalisation specs and value ranges parsed once, here; grouped options arrive as one
argument; -v/-q decide what is said."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from unet_edge.cli import options
from unet_edge.cli.options import ByteSize, PixelCount, Reporter, SegmenterArgs
from unet_edge.config import Normalization
from unet_edge.engines.options import ProviderOptions


def test_byte_sizes() -> None:
    size = ByteSize()
    assert [size.convert(v, None, None) for v in ("256MiB", "1G", "512", "64k")] == [
        256 << 20,
        1 << 30,
        512 << 20,
        64 << 10,
    ]
    assert size.convert("1.5GiB", None, None) == 3 << 29 and size.convert(7, None, None) == 7
    with pytest.raises(click.BadParameter, match="expected a size like 256MiB or 1GiB, got 'lots'"):
        size.convert("lots", None, None)
    with pytest.raises(click.BadParameter, match="expected a positive size, got '0'"):
        size.convert("0", None, None)


def test_pixel_counts_are_decimal_and_zero_is_no_limit() -> None:
    count = PixelCount()
    got = [count.convert(v, None, None) for v in ("2G", "500M", "64k", "1000", "0")]
    assert got == [2 * 10**9, 500 * 10**6, 64_000, 1000, 0]
    with pytest.raises(click.BadParameter, match="pixel count like 2G or 500M, got '2T'"):
        count.convert("2T", None, None)
    with pytest.raises(click.BadParameter, match="pixel count >= 0, got '-1'"):
        count.convert("-1", None, None)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("percentile:1,99.8", Normalization(mode="percentile", low=1.0, high=99.8)),
        ("range:0,4095,clip", Normalization(mode="fixed_range", low=0.0, high=4095.0, clip=True)),
        ("DTYPE", Normalization(mode="dtype_range")),
        ("dtype:mean=0.5,std=0.25",
         Normalization(mode="dtype_range", mean=0.5, std=0.25)),
    ],
)  # fmt: skip
def test_normalization_specs(spec: str, expected: Normalization) -> None:
    assert options.parse_normalization(spec) == expected


@pytest.mark.parametrize(
    "spec", ["percentile:1", "zscore:0,1", "range:0,1,gain=2", "dtype:0,1", "range:a,b"]
)
def test_bad_normalization_specs_say_what_is_expected(spec: str) -> None:
    with pytest.raises(click.BadParameter, match=f"^'{spec}': "):
        options.parse_normalization(spec)


@click.command()
@options.tile_opt
@options.input_range_opt
@options.bit_depth_opt
@options.verbosity_options
def _echo(tile: Any, input_range: Any, bit_depth: Any, out: Reporter) -> None:
    """A command with the shared options, saying what it received."""
    click.echo(f"tile={tile!r} range={input_range!r} bits={bit_depth!r} v={out.verbosity}")
    out.info("info line")
    out.detail("detail line")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "tile=None range=None bits=None v=0"),
        (["--tile", "auto"], "tile=None"),
        (["--tile", "572"], "tile=572"),
        (["--tile", "572x764"], "tile=(572, 764)"),
        (["--tile", "572,764"], "tile=(572, 764)"),
        (["--input-range", "0,4095"], "range=(0.0, 4095.0)"),
        (["--bit-depth", "12"], "bits=12"),
        (["-vv"], "v=2"),
        (["-q"], "v=-1"),
    ],
)
def test_shared_options_parse(args: list[str], said: str) -> None:
    r = CliRunner().invoke(_echo, args)
    assert r.exit_code == 0, r.output
    assert said in r.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--tile", "1x2x3"], "expected N or HxW, got '1x2x3'"),
        (["--tile", "big"], "expected N or HxW, got 'big'"),
        (["--input-range", "5,1"], "expected LO,HI with LO < HI, got '5,1'"),
        (["--bit-depth", "12", "--input-range", "0,1"], "exclude each other; give one"),
        (["--bit-depth", "33"], "33 is not in the range 1<=x<=32"),
    ],
)
def test_shared_options_refuse(args: list[str], said: str) -> None:
    r = CliRunner().invoke(_echo, args)
    assert r.exit_code == 2 and said in r.output


def test_verbosity_decides_what_is_said() -> None:
    def said(*args: str) -> list[str]:
        out = CliRunner().invoke(_echo, list(args)).output
        return [ln for ln in out.splitlines() if ln.endswith(" line")]

    assert said() == ["info line"]
    assert said("-v") == ["info line", "detail line"]
    assert said("-q") == []
    assert Reporter(quiet=True, verbose=3).verbosity == -1  # -q wins
    assert not Reporter().bars  # not a terminal here: no progress bars


def test_segmenter_args_become_segmenter_keywords(tmp_path: Path) -> None:
    args = SegmenterArgs(tmp_path / "m.onnx", "cpu", "fp32", 2, 0, (188, 204), 3)
    assert args.kwargs() == {
        "provider": "cpu",
        "tile": (188, 204),
        "batch_size": 3,
        "options": ProviderOptions(threads=2, device_id=0, precision="fp32"),
    }
