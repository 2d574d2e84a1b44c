"""Option values are untrusted input: sizes and counts parse to finite whole numbers or are
refused by name, a key given twice in a spec is an error, and a long value is shortened in
the message (unet_edge/cli/options.py).

Every refusal is asserted exactly: exit code 2 (a usage error, before anything is read or
computed), one ``Error:`` line naming the option and quoting the value (shortened when
long), no traceback; every value taken is asserted equal to the integer it means.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from unet_edge.cli import main
from unet_edge.cli.options import MOST, ByteSize, PixelCount, parse_normalization
from unet_edge.config import Normalization

LONG = "9" * 100_000


def _refused(tmp_path: Path, option: str, value: str) -> str:
    """The error line of ``run`` given ``option value`` (exit 2, nothing written)."""
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", str(tmp_path / "x.png"), "-o", str(out), option, value])
    assert r.exit_code == 2, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in r.output, r.output
    assert errors[0].startswith(f"Error: Invalid value for '{option}': "), errors[0]
    assert len(errors[0]) < 400 and not out.exists()
    return errors[0].split(": ", 2)[2]


SIZES = [
    ("inf", "expected a size like 256MiB or 1GiB, got 'inf'"),
    ("-inf", "expected a size like 256MiB or 1GiB, got '-inf'"),
    ("nan", "expected a size like 256MiB or 1GiB, got 'nan'"),
    ("NaNGiB", "expected a size like 256MiB or 1GiB, got 'NaNGiB'"),
    ("1e400", "expected a size of at most 8 PiB, got '1e400'"),
    ("1e999999999", "expected a size like 256MiB or 1GiB, got '1e999999999'"),
    ("9e15", "expected a size of at most 8 PiB, got '9e15'"),
    ("1e-9", "expected a size of at least one byte, got '1e-9'"),
    ("0", "expected a positive size, got '0'"),
    ("-1G", "expected a positive size, got '-1G'"),
    ("", "expected a size like 256MiB or 1GiB, got ''"),
    ("lots", "expected a size like 256MiB or 1GiB, got 'lots'"),
    (LONG, f"expected a size of at most 8 PiB, got '{'9' * 54}...' (100000 characters)"),
]


@pytest.mark.parametrize("option", ["--memory-limit", "--memory-budget"])
@pytest.mark.parametrize(("value", "said"), SIZES, ids=[v[:12] or "empty" for v, _ in SIZES])
def test_sizes_are_finite_whole_bytes_or_refused_by_name(
    tmp_path: Path, option: str, value: str, said: str
) -> None:
    assert _refused(tmp_path, option, value) == said


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("256MiB", 256 << 20),
        ("1.5GiB", 3 << 29),
        ("0.1k", 102),  # whole bytes, rounded down
        ("1", 1 << 20),
        ("8192P".replace("P", "G"), 8192 << 30),
        ("1e-6", 1),  # a MiB's millionth is one byte
    ],
)
def test_sizes_taken_are_the_integer_they_mean(value: str, size: int) -> None:
    got = ByteSize().convert(value, None, None)
    assert got == size and type(got) is int


COUNTS = [
    ("inf", "expected a pixel count like 2G or 500M, got 'inf'"),
    ("nan", "expected a pixel count like 2G or 500M, got 'nan'"),
    ("0.5", "expected a whole number of pixels, got '0.5'"),
    ("1.5", "expected a whole number of pixels, got '1.5'"),
    ("0.0001k", "expected a whole number of pixels, got '0.0001k'"),
    ("1.0000001k", "expected a whole number of pixels, got '1.0000001k'"),
    ("-1", "expected a pixel count >= 0, got '-1'"),
    ("1e400", f"expected a pixel count of at most {MOST}, got '1e400'"),
    ("2T", "expected a pixel count like 2G or 500M, got '2T'"),
    (LONG, f"expected a pixel count of at most {MOST}, got '{'9' * 54}...' (100000 characters)"),
]


@pytest.mark.parametrize(("value", "said"), COUNTS, ids=[v[:12] for v, _ in COUNTS])
def test_pixel_counts_are_finite_whole_numbers_or_refused(
    tmp_path: Path, value: str, said: str
) -> None:
    assert _refused(tmp_path, "--max-pixels", value) == said


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("1.1k", 1100),
        ("2.5M", 2_500_000),
        ("0", 0),
        ("-0", 0),
        ("1e9", 10**9),
        ("1.5G", 15 * 10**8),
    ],
)
def test_pixel_counts_taken_are_exact(value: str, count: int) -> None:
    got = PixelCount().convert(value, None, None)
    assert got == count and type(got) is int


RANGES = [
    ("0,inf", "expected LO,HI as finite numbers, got '0,inf'"),
    ("nan,1", "expected LO,HI as finite numbers, got 'nan,1'"),
    ("-1e400,0", "expected LO,HI as finite numbers, got '-1e400,0'"),
    ("5,1", "expected LO,HI with LO < HI, got '5,1'"),
    (f"0,{LONG}", f"expected LO,HI as finite numbers, got '0,{'9' * 52}...' (100002 characters)"),
]


@pytest.mark.parametrize(("value", "said"), RANGES, ids=[v[:10] for v, _ in RANGES])
def test_input_ranges_are_finite(tmp_path: Path, value: str, said: str) -> None:
    assert _refused(tmp_path, "--input-range", value) == said


NORMALIZATIONS = [
    ("percentile:1,99,mean=0.5,mean=0.7", "mean is given twice; give it once"),
    ("percentile:1,99,std=1,std=1", "std is given twice; give it once"),
    ("range:0,1,clip,clip", "clip is given twice; give it once"),
    ("range:0,1,mean=0.5, mean =0.7", "mean is given twice; give it once"),
    ("percentile:1,99,mean=inf", "normalisation mean must be a finite number"),
    ("percentile:1,x", "high is not a number: 'x'"),
    ("percentile:1,99,mean=" + "x" * 5000, "mean is not a number: 'xxxxxxxxxxxxx"),
    ("percentile:1,99,mean=" + LONG[:5000], "mean must be a finite number"),  # 1e5000 is inf
]


@pytest.mark.parametrize(("spec", "said"), NORMALIZATIONS, ids=[s[:30] for s, _ in NORMALIZATIONS])
def test_normalization_specs_are_refused_with_the_reason(
    tmp_path: Path, spec: str, said: str
) -> None:
    message = _refused(tmp_path, "--normalization", spec)
    assert said in message
    quoted = repr(spec) if len(repr(spec)) <= 60 else f"{repr(spec)[:55]}...' ("
    assert message.startswith(quoted)


def test_a_long_spec_is_shortened_in_the_message(tmp_path: Path) -> None:
    message = _refused(tmp_path, "--normalization", "x" * 100_000)
    assert message.startswith(f"'{'x' * 54}...' (100000 characters): expected percentile:")


def test_keys_are_taken_once_with_spaces_around_them() -> None:
    got = parse_normalization("percentile:1,99.8, mean = 0.5 ,std=0.25")
    assert got == Normalization(mode="percentile", low=1.0, high=99.8, mean=0.5, std=0.25)
    with pytest.raises(click.BadParameter, match="std is given twice"):
        parse_normalization("dtype:std=1,std=2")


@pytest.mark.parametrize("value", ["nan", "NaN", "0", "1.5", "-0.1"])
def test_quantize_threshold_is_a_share_or_refused_by_name(tmp_path: Path, value: str) -> None:
    """click's FloatRange lets NaN through; the threshold refuses it before any work."""
    img = tmp_path / "a.png"
    img.write_bytes(b"")
    res = CliRunner().invoke(main, ["quantize", "-c", str(img), "--threshold", value])
    assert res.exit_code == 2, res.output
    assert "--threshold" in res.output
    assert not list(tmp_path.glob("*.onnx"))
