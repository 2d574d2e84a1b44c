"""The one registry of options the commands share (as rasterio's ``rio/options.py``).

Each option is declared once here, with its help; commands stack them. Two
groups collapse into one argument: :func:`segmenter_options` (model,
provider, threads, device, tile, batch size) passes a
:class:`SegmenterArgs`, and :func:`verbosity_options` (-v/-q) a
:class:`Reporter`.
"""

from __future__ import annotations

import contextlib
import decimal
import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import ComputePrecision
from ..engines.options import Provider
from ..io import MAX_PIXELS
from ..paths.files import IN_MEMORY_LIMIT
from ..runtime import DEFAULT_MEMORY_BUDGET

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


# -- parsing -----------------------------------------------------------------
#: Largest size or count an option takes: far beyond any real one, and still exact as a float.
MOST = 2**53


def shown(value: object, limit: int = 60) -> str:
    """``value`` quoted for a message, shortened to about ``limit`` characters (a value
    can be 100,000 characters long; the message stays one readable line)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 5]}...{text[-1]} ({len(str(value))} characters)"


def _numbers(value: str, what: str, kind: Callable[[str], T]) -> list[T]:
    try:
        return [kind(v) for v in value.lower().replace("x", ",").split(",")]
    except (ValueError, OverflowError):
        raise click.BadParameter(f"expected {what}, got {shown(value)}") from None


def _scaled(text: str, units: Mapping[str, int]) -> decimal.Decimal | None:
    """The number in ``text`` times the factor of its unit suffix (a key of ``units``; none:
    ``units[""]``), in exact decimal arithmetic (1.1k is 1100, not 1100.0000000000002);
    None unless it is a finite number."""
    unit = text[-1:] if text[-1:] and text[-1:] in units else ""
    try:
        number = decimal.Decimal(text[: len(text) - len(unit)]) * units[unit]
    except (decimal.DecimalException, ValueError):
        return None
    return number if number.is_finite() else None


def _tile(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None or value == "auto":
        return None
    parts = _numbers(value, "N or HxW", int)
    if len(parts) > 2:
        raise click.BadParameter(f"expected N or HxW, got {shown(value)}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _value_range(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    _exclusive(ctx, param, value, "input_range", "bit_depth")
    if value is None:
        return None
    parts = _numbers(value, "LO,HI", float)
    if len(parts) == 2 and not all(-MOST <= p <= MOST for p in parts):  # inf, nan, 1e400
        raise click.BadParameter(f"expected LO,HI as finite numbers, got {shown(value)}")
    if len(parts) != 2 or not parts[0] < parts[1]:
        raise click.BadParameter(f"expected LO,HI with LO < HI, got {shown(value)}")
    return parts[0], parts[1]


def _bit_depth(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    _exclusive(ctx, param, value, "input_range", "bit_depth")
    return value


def _exclusive(ctx: click.Context, param: click.Parameter, value: object, *names: str) -> None:
    """Refuse two of ``names`` together (whichever is parsed second sees the first)."""
    given = [n for n in names if n != param.name and ctx.params.get(n) is not None]
    if value is not None and given:
        flags = " and ".join(f"--{n.replace('_', '-')}" for n in (given[0], param.name or ""))
        raise click.UsageError(f"{flags} exclude each other; give one", ctx)


_SIZE_UNITS = {"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class ByteSize(click.ParamType):
    """A size like 256MiB, 1G or 512 (MiB when no unit is given), as bytes."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removesuffix("b").removesuffix("i")
        number = _scaled(text, _SIZE_UNITS)
        if number is None:
            self.fail(f"expected a size like 256MiB or 1GiB, got {shown(value)}", param, ctx)
        if not 1 <= number <= MOST:
            why = "size of at least one byte" if number > 0 else "positive size"
            why = f"size of at most {MOST >> 50} PiB" if number > MOST else why
            self.fail(f"expected a {why}, got {shown(value)}", param, ctx)
        return int(number)  # whole bytes


def parse_normalization(spec: str) -> Any:
    """``percentile:LOW,HIGH`` | ``range:LOW,HIGH`` | ``dtype``, then ``,mean=M,std=S,clip``."""
    from ..config import Normalization

    head, _, rest = spec.partition(":")
    mode = {"percentile": "percentile", "range": "fixed_range", "dtype": "dtype_range"}.get(
        head.strip().lower()
    )
    items = [t.strip() for t in (rest.split(",") if rest else []) if t.strip()]
    numbers = [t for t in items if "=" not in t and t != "clip"]
    pairs = [(k.strip(), v) for k, v in (t.split("=", 1) for t in items if "=" in t)]
    keys = [k for k, _ in pairs] + [t for t in items if t == "clip"]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:  # the last one silently winning would hide a typo
        raise click.BadParameter(f"{shown(spec)}: {twice} is given twice; give it once")
    extra = dict(pairs)
    n_low_high = 0 if mode == "dtype_range" else 2
    if mode is None or len(numbers) != n_low_high or set(extra) - {"mean", "std"}:
        raise click.BadParameter(
            f"{shown(spec)}: expected percentile:LOW,HIGH, range:LOW,HIGH or dtype, optionally "
            "followed by ,mean=M,std=S,clip (e.g. percentile:1,99.8,mean=0.5,std=0.25,clip)"
        )
    named = {**extra, **dict(zip(("low", "high"), numbers, strict=False))}
    values = {k: _float(spec, k, v) for k, v in named.items()}
    try:
        return Normalization(mode=mode, clip="clip" in items, **values)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(f"{shown(spec)}: {e}") from None


def _float(spec: str, key: str, text: str) -> float:
    """The number ``text`` given for ``key`` in the normalisation ``spec``."""
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{shown(spec)}: {key} is not a number: {shown(text)}") from None


def _normalization(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    return None if value is None else parse_normalization(value)


def _default_model(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    from ..models.shipped import resolve_model

    return resolve_model(value)  # None: the default; a shipped name (nuclei): its file


# -- the registry -------------------------------------------------------------
model_opt = click.option(
    "--model",
    "-m",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="NAME|FILE",
    default=None,
    callback=_default_model,
    help="A shipped model by name (isbi2012, nuclei; `unet-edge models` lists them) or an ONNX "
    "model file written by `unet-edge export` [default: isbi2012, the ISBI 2012 EM model].",
)
normalization_opt = click.option(
    "--normalization",
    callback=_normalization,
    metavar="SPEC",
    help="How the model's training images were scaled: needed for an ONNX U-Net without "
    "unet-edge metadata (probed; a bioimage.io .zip needs none), replaces the model's own "
    "otherwise. percentile:LOW,HIGH | range:LOW,HIGH | dtype, then optionally ,mean=M,std=S,clip.",
)


def choice_opt(*decls: str, choices: Sequence[str], default: str, help: str) -> Callable[[F], F]:
    """An option taking one of ``choices`` (any case), its default shown."""
    kind = click.Choice(list(choices), case_sensitive=False)
    return click.option(*decls, type=kind, default=default, show_default=True, help=help)


provider_opt = choice_opt(
    "--provider",
    "-p",
    choices=[p.value for p in Provider],
    default=Provider.CPU.value,
    help="Execution provider; auto takes the best that really works here "
    "(tensorrt, cuda, openvino, cpu).",
)
precision_opt = choice_opt(
    "--precision",
    choices=[p.value for p in ComputePrecision],
    default=ComputePrecision.FP32.value,
    help="Arithmetic of the model's float parts: bf16 needs --provider openvino and a CPU with "
    "AVX512-BF16 or AMX (about 2x faster; a few pixels may change class).",
)
threads_opt = click.option(
    "--threads", type=click.IntRange(min=1), help="CPU threads for inference [default: all cores]."
)
device_id_opt = click.option(
    "--device-id",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="GPU index for cuda/tensorrt.",
)
tile_opt = click.option(
    "--tile",
    metavar="N|HxW",
    default=None,
    callback=_tile,
    help="Tile input size, legal for the model (`unet-edge info` lists them) "
    "[default: chosen per image].",
)
batch_size_opt = click.option(
    "--batch-size", type=click.IntRange(min=1), help="Tiles per call [default: 1 on CPU, 4 on GPU]."
)
_TTA_HELP = (
    "Test-time augmentation: average the probabilities over the 8 flips and rotations "
    "(8x the compute; see the README for what it changes)."
)
tta_opt = click.option("--tta", is_flag=True, help=_TTA_HELP)
overwrite_opt = click.option(
    "--overwrite", is_flag=True, help="Replace existing output files (inputs never)."
)
input_range_opt = click.option(
    "--input-range",
    metavar="LO,HI",
    default=None,
    callback=_value_range,
    help="Raw value range of the camera, mapped to the model's fixed normalisation range "
    "(e.g. 0,4095); excludes --bit-depth.",
)
bit_depth_opt = click.option(
    "--bit-depth",
    type=click.IntRange(1, 32),
    default=None,
    callback=_bit_depth,
    help="Camera bit depth, the same as --input-range 0,2^N-1 (e.g. 12 for 12-bit data in "
    "16-bit files).",
)


def _size_opt(flag: str, default: int, help: str) -> Callable[[F], F]:
    """An option for a number of bytes, written 256MiB, 1GiB or 512 (MiB)."""
    shown = f"{default >> 20}MiB"
    return click.option(flag, type=ByteSize(), default=shown, show_default=True, help=help)


memory_budget_opt = _size_opt(
    "--memory-budget",
    DEFAULT_MEMORY_BUDGET,
    "Estimated activation memory of one inference call, for the tile choice "
    "(a size: 256MiB, 1GiB; a plain number is MiB). 256MiB keeps large images near 0.6 GB.",
)
memory_limit_opt = _size_opt(
    "--memory-limit",
    IN_MEMORY_LIMIT,
    "Estimated memory for one image in memory; a single-image TIFF that needs more is "
    "segmented window by window (mask only), other images are refused.",
)


_PIXEL_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


class PixelCount(click.ParamType):
    """A number of pixels like 2000000000, 2G or 500M (decimal units); 0 means no limit."""

    name = "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        number = _scaled(str(value).strip().lower(), _PIXEL_UNITS)
        if number is None:
            self.fail(f"expected a pixel count like 2G or 500M, got {shown(value)}", param, ctx)
        if not 0 <= number <= MOST:
            limit = ">= 0" if number < 0 else f"of at most {MOST}"
            self.fail(f"expected a pixel count {limit}, got {shown(value)}", param, ctx)
        if number != number.to_integral_value():  # 0.5 would round to 0: no limit at all
            self.fail(f"expected a whole number of pixels, got {shown(value)}", param, ctx)
        return int(number)


max_pixels_opt = click.option(
    "--max-pixels",
    type=PixelCount(),
    default=f"{(MAX_PIXELS or 0) / 1e9:g}G",
    show_default=True,
    help="Most pixels one image (plane) may have, checked from the header before decoding: "
    "a guard against damaged or malicious files (2G, 500M; 0: no limit).",
)
dask_opt = click.option(
    "--dask",
    metavar="ADDRESS|local[:N]",
    default=None,
    help="Segment (and label) on a Dask cluster, with the same outputs: a scheduler address "
    "(tcp://host:8786; inputs and model at the same paths on every worker) or local[:N] "
    "(N worker processes here, one per core by default). Implies --large. Needs the [dask] "
    "extra.",
)


class MinSizeType(click.ParamType):
    """A smallest object size: pixels (20, 20px) or square micrometres (2um2)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..errors import InputError
        from ..objects.labels import MinSize

        try:
            return MinSize.parse(value)
        except InputError as e:
            self.fail(str(e), param, ctx)


def object_options(f: F) -> F:
    """--labels, --measure, --rois, --geojson, --min-size, --split (and --pixel-size) as one
    ``objects``: a dict of :func:`unet_edge.paths.files.segment_file`'s keyword arguments."""
    keys = ["labels", "measure", "rois", "geojson", "min_size", "split", "pixel_size"]
    f = _collapse(f, "objects", dict, keys)
    opts = [
        click.option(
            "--labels",
            is_flag=True,
            help="Also write NAME_labels.tif: each object (a connected region of the model's "
            "object classes; the shipped model: cell) numbered 1..N, background 0 (uint16, "
            "uint32 above 65535 objects; ImageJ TIFF, stacks slice by slice).",
        ),
        click.option(
            "--measure",
            is_flag=True,
            help="Also write NAME_objects.csv: one row per object (area, centroid, bounding "
            "box, perimeter, equivalent diameter, mean probability and intensity; in um when "
            "the image has a pixel size, else px).",
        ),
        click.option(
            "--rois",
            is_flag=True,
            help="Also write NAME_rois.zip: an ImageJ ROI set, one outline per object named "
            "by its label (composite ROIs for objects with holes).",
        ),
        click.option(
            "--geojson",
            is_flag=True,
            help="Also write NAME_objects.geojson: the outlines and measurements as a GeoJSON "
            "FeatureCollection QuPath imports (pixel coordinates).",
        ),
        click.option(
            "--min-size",
            type=MinSizeType(),
            default=None,
            help="Remove objects smaller than this: pixels (20px) or square micrometres (2um2, "
            "needs a calibrated image) [default: the model's (nuclei: 10px), else 0px].",
        ),
        click.option(
            "--split",
            type=click.Choice(["watershed", "none"], case_sensitive=False),
            default=None,
            help="Split touching convex objects by a seeded watershed on the distance "
            "transform, or not (none) [default: the model's (nuclei: watershed), else "
            "objects are the connected regions].",
        ),
        click.option(  # checked by the library (unet_edge.scale.parse), before any compute
            "--pixel-size",
            metavar="UM|native",
            help="The images' pixel size in um (0.008: 8 nm), stated or overriding their files'; "
            "'native': segment at their own pixel size [default: each file's calibration: "
            "resampled to the model's pixel size when both are known].",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def path_opt(*decls: str, help: str, folder: bool = False) -> Callable[[F], F]:
    """An optional file (or folder) path option, as a :class:`~pathlib.Path`."""
    kind = click.Path(dir_okay=folder, file_okay=not folder, path_type=Path)
    return click.option(*decls, type=kind, help=help)


def output_opt(
    what: str, *, folder: bool = False, default: Path | None = None, required: bool = False
) -> Callable[[F], F]:
    """``-o/--output``: ``what`` is written there (a file, or a folder if ``folder``)."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=folder, file_okay=not folder, path_type=Path),
        default=default,
        required=required,
        show_default=default is not None,
        help=f"{what}{' (created if missing)' if folder else ''}.",
    )


# -- grouped options ----------------------------------------------------------
@dataclass(frozen=True)
class SegmenterArgs:
    """The Segmenter options of a command, as parsed."""

    model: Path
    provider: str
    precision: str
    threads: int | None
    device_id: int
    tile: int | tuple[int, int] | None
    batch_size: int | None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`unet_edge.Segmenter` beyond the model."""
        from ..engines.options import ProviderOptions

        return {
            "provider": self.provider,
            "tile": self.tile,
            "batch_size": self.batch_size,
            "options": ProviderOptions(
                threads=self.threads, device_id=self.device_id, precision=self.precision
            ),
        }


def _collapse(f: F, name: str, make: Callable[..., Any], keys: Sequence[str]) -> F:
    """Wrap ``f`` so that the options ``keys`` arrive as one argument ``name`` = make(**them)."""

    @functools.wraps(f)
    def command(*args: Any, **kwargs: Any) -> Any:
        kwargs[name] = make(**{k: kwargs.pop(k) for k in keys})
        return f(*args, **kwargs)

    return command  # type: ignore[return-value]


def segmenter_options(f: F) -> F:
    """-m, -p, --precision, --threads, --device-id, --tile, --batch-size as one ``segmenter``."""
    f = _collapse(f, "segmenter", SegmenterArgs, [x.name for x in fields(SegmenterArgs)])
    opts = (batch_size_opt, tile_opt, device_id_opt, threads_opt, precision_opt, provider_opt)
    for opt in (*opts, model_opt):
        f = opt(f)
    return f


class Reporter:
    """Where a command talks, on stderr: -q silences, -v adds detail. Errors always show."""

    def __init__(self, verbose: int = 0, quiet: bool = False) -> None:
        self.verbosity = -1 if quiet else verbose

    def info(self, msg: str) -> None:
        if self.verbosity >= 0:
            click.echo(msg, err=True)

    def detail(self, msg: str) -> None:
        if self.verbosity > 0:
            click.echo(msg, err=True)

    @property
    def bars(self) -> bool:
        """Whether progress bars make sense (an interactive stderr, not -q)."""
        return sys.stderr.isatty() and self.verbosity >= 0

    @contextlib.contextmanager
    def progress(self, items: Sequence[T], label: str) -> Iterator[Iterable[T]]:
        """Iterate ``items`` with a progress bar when there are several and stderr is a terminal."""
        if not (self.bars and len(items) > 1):
            yield items
            return
        with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
            yield bar


def verbosity_options(f: F) -> F:
    """-v/--verbose (repeatable) and -q/--quiet, as ``out: Reporter``."""
    f = _collapse(f, "out", Reporter, ["verbose", "quiet"])
    f = click.option("-q", "--quiet", is_flag=True, help="Only errors.")(f)
    return click.option("-v", "--verbose", count=True, help="More detail (repeatable).")(f)
