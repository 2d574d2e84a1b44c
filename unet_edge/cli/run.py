"""``unet-edge run`` (segment image files) and ``unet-edge info`` (describe a model)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import domain, io
from ..errors import OutputError, UnetEdgeError
from ..paths import files
from . import options as o
from .messages import error_line, printable

if TYPE_CHECKING:
    from ..config import Normalization
    from ..runtime import Segmenter


_T = TypeVar("_T")

#: Exit codes of ``unet-edge run`` (also in its --help).
EXIT_SOME_FAILED = 3
EXIT_CODES = """\b
Exit codes:
  0    every input was segmented
  1    error: a bad option, model or output folder, the only input or every
       input failed, or --fail-fast stopped at a failure
  2    usage error (unknown option, bad value)
  3    some inputs failed (listed at the end), the others were written
  130  interrupted (Ctrl-C); 143 SIGTERM; 129 SIGHUP: temporary files removed
"""


@click.command(
    short_help="Segment images (files, folders, globs) into mask files.", epilog=EXIT_CODES
)
@click.argument("inputs", nargs=-1, required=True)
@o.output_opt(
    "Folder for NAME_mask.png/.tif and the other results",
    folder=True,
    default=Path("unet-edge-output"),
)
@o.segmenter_options
@click.option(
    "--probabilities",
    is_flag=True,
    help="Also write float32 class probabilities as NAME_probabilities.tif (classes, H, W).",
)
@click.option(
    "--overlay",
    is_flag=True,
    help="Also write NAME_overlay.png: the image with the mask (of a stack or time series: "
    "NAME_overlay.tif, one RGB page per slice).",
)
@click.option(
    "--channel",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="The channel (C axis; of RGB: 0 red, 1 green, 2 blue) a 1-channel model segments "
    "[default: images with several channels are refused, naming them; grey stored as RGB "
    "is taken as grey].",
)
@click.option(
    "--large",
    is_flag=True,
    help="Read TIFFs window by window and write the mask TIFF band by band: memory does not "
    "grow with the image's height [default: only for TIFFs too large for memory].",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["tiff", "ome-tiff"]),
    default="tiff",
    show_default=True,
    help="TIFF outputs as ImageJ hyperstacks (tiff) or OME-TIFF (ome-tiff: NAME_mask.ome.tif "
    "for every input); both carry the input's pixel size.",
)
@o.object_options
@o.memory_budget_opt
@o.memory_limit_opt
@o.max_pixels_opt
@o.dask_opt
@o.input_range_opt
@o.bit_depth_opt
@o.tta_opt
@o.normalization_opt
@o.overwrite_opt
@click.option(
    "--fail-fast", is_flag=True, help="Stop at the first input that fails [default: go on]."
)
@o.verbosity_options
def run(
    inputs: Sequence[str],
    output: Path,
    segmenter: o.SegmenterArgs,
    probabilities: bool,
    overlay: bool,
    channel: int | None,
    large: bool,
    output_format: str,
    objects: dict[str, Any],
    memory_budget: int,
    memory_limit: int,
    max_pixels: int,
    dask: str | None,
    input_range: tuple[float, float] | None,
    bit_depth: int | None,
    tta: bool,
    normalization: Normalization | None,
    overwrite: bool,
    fail_fast: bool,
    out: o.Reporter,
) -> None:
    """Segment images: files, folders or glob patterns.

    Writes NAME_mask.png (0/255 for two classes, class indices otherwise; .tif
    for TIFF inputs: an ImageJ hyperstack with the input's pixel size) into the
    output folder. Every output and every input's header is checked before any compute;
    existing files are kept unless --overwrite. A TIFF too large for memory is
    segmented window by window (as with --large); other images that large are
    refused. An input that fails is reported and the others go on. Hidden
    files are never inputs; temporary files a killed run left in the output
    folder are removed.

    \b
    Example (12-bit camera data in 16-bit TIFFs):
      unet-edge run scans/*.tif -o masks/ --overlay --bit-depth 12
    Another U-Net's ONNX file, or a bioimage.io package:
      unet-edge run img.png -m their.onnx --normalization percentile:1,99.8
      unet-edge run img.png -m model.zip
    """
    from ..runtime import Segmenter

    wanted: dict[str, Any] = {"probabilities": probabilities, "overlay": overlay}
    wanted.update(output_format=output_format, channel=channel, **objects)
    wanted.update(overwrite=overwrite, large=True if large or dask else None)  # None: by size
    plans = files.plan_files(inputs, output, **wanted)
    _clean_stale(output, out)
    wanted.update(memory_limit=memory_limit, max_pixels=max_pixels)
    batch = _Batch(plans, fail_fast)
    settings: dict[str, Any] = {"memory_budget": memory_budget, "tta": tta}
    settings.update(input_range=input_range, bit_depth=bit_depth, normalization=normalization)
    with (
        _temporaries_removed_on_signals(),
        Segmenter(segmenter.model, **segmenter.kwargs(), **settings) as seg,
        _cluster(dask, segmenter.threads, wanted),
    ):
        written = batch.run(seg, wanted, out)
    if written or not batch.failed:
        out.info(f"wrote {written} file(s) to {output}")
    batch.finish(output)


class _Batch:
    """Runs each input on its own: a failure is printed (one line naming the file) and the
    batch goes on, unless ``fail_fast`` or the batch holds one input, or the output broke."""

    def __init__(self, plans: Sequence[files.FilePlan], fail_fast: bool) -> None:
        self.plans, self.fail_fast = plans, fail_fast
        self.failed: list[Path] = []

    def attempt(self, path: Path, fn: Callable[..., _T], *args: Any) -> _T | None:
        """``fn(*args)`` for input ``path``; None when it failed (and the batch goes on)."""
        try:
            return fn(*args)
        except UnetEdgeError as e:
            if self.fail_fast or len(self.plans) == 1 or isinstance(e, OutputError):
                raise
            click.echo(error_line(e), err=True)
            self.failed.append(path)
            return None

    def run(self, seg: Segmenter, wanted: dict[str, Any], out: o.Reporter) -> int:
        """Say how ``seg`` runs, check every header, then segment; the number of files written.

        Each input is opened twice: its header here before any compute, its pixels when
        its turn comes (the header handed on, :func:`unet_edge.paths.files.segment_checked`).
        """
        for note in seg.notes:
            out.info(note)
        out.detail(f"{seg!r}: {seg.geometry.describe()}")
        ready = self.checked(seg, wanted)  # every header, before the first compute
        with out.progress(ready, "Segmenting") as bar:
            return sum(
                self.attempt(check.plan.input, _segment, seg, check, wanted, out) or 0
                for check in bar
            )

    def checked(self, seg: Segmenter, wanted: dict[str, Any]) -> list[files.Preflight]:
        """The inputs whose header passes the preflight (the others are reported as failed)."""
        keys = ("large", "memory_limit", "max_pixels")

        def check(plan: files.FilePlan) -> files.Preflight:
            with files.errors_name(plan.input):
                return files.preflight(seg, plan, **{k: wanted[k] for k in keys})

        found = (self.attempt(plan.input, check, plan) for plan in self.plans)
        return [c for c in found if c is not None]

    def finish(self, output: Path) -> None:
        """Exit 3 when some inputs failed (1 when all did), listing them."""
        if not self.failed:
            return
        n, total = len(self.failed), len(self.plans)
        names = ", ".join(str(p) for p in self.failed[:10]) + (" ..." if n > 10 else "")
        if n == total:
            raise click.ClickException(f"all {total} inputs failed: {names}")
        click.echo(
            f"Error: {n} of {total} inputs failed: {names}; the other {total - n} were "
            f"segmented into {output}",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_SOME_FAILED)


def _segment(
    seg: Segmenter, check: files.Preflight, wanted: dict[str, Any], out: o.Reporter
) -> int:
    """Segment one checked input; returns the number of files written."""
    t0 = time.perf_counter()
    kwargs = {k: wanted[k] for k in ("overwrite", "max_pixels")}
    kwargs.update({k: wanted[k] for k in ("dask_client", "dask_threads") if k in wanted})
    with _bands_bar(out if "dask_client" in wanted else None, check.plan.input.name) as bar:
        result = files.segment_checked(seg, check, progress=bar, **kwargs)
    if result.provenance.get("calibration_note"):  # the input's pixel size was not taken
        out.info(printable(f"{result.input}: {result.provenance['calibration_note']}"))
    if result.provenance.get("axes_note"):  # grey stored as RGB, taken as grey
        out.info(printable(str(result.provenance["axes_note"])))
    unlike = domain.warning(str(result.input), seg.info.name, result.provenance.get("quality"))
    if unlike:  # the mask of an image unlike the training data is not to be trusted
        out.info(printable(f"Warning: {unlike}"))
    how = "window by window" if result.windowed else "in memory"
    out.detail(
        f"{result.input} -> {', '.join(map(str, result.outputs.values()))} "
        f"({how}, {time.perf_counter() - t0:.2f} s, {result.provenance['tile_plan']})"
    )
    return len(result.outputs)


@contextlib.contextmanager
def _cluster(spec: str | None, threads: int | None, wanted: dict[str, Any]) -> Iterator[None]:
    """With ``--dask``: a client of that cluster in ``wanted`` (and the inference threads
    per worker) while the block runs; nothing otherwise."""
    if spec is None:
        yield
        return
    from ..paths import cluster

    with cluster.connect(spec) as client:
        wanted.update(dask_client=client, dask_threads=threads or cluster.worker_threads(spec))
        yield


@contextlib.contextmanager
def _bands_bar(out: o.Reporter | None, name: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback ``(done, total)`` that draws a bar of the bands of one input, on
    an interactive stderr (None without ``out`` or a terminal)."""
    if out is None or not out.bars:
        yield None
        return
    with contextlib.ExitStack() as stack:
        bars: list[Any] = []

        def update(done: int, total: int) -> None:
            if not bars:
                bar = click.progressbar(length=total, label=name, file=sys.stderr, show_pos=True)
                bars.append(stack.enter_context(bar))
            bars[0].update(done - bars[0].pos)

        yield update


def _clean_stale(output: Path, out: o.Reporter) -> None:
    """Remove temporary files that killed runs left in the output folder; say so."""
    removed, kept = io.clean_stale_temporaries(output)
    if removed:
        out.info(f"removed {len(removed)} temporary file(s) left by an interrupted run in {output}")
    if kept:
        out.info(
            f"{len(kept)} temporary file(s) of another unet-edge run are in {output} "
            f"(e.g. {kept[0].name}); they are ignored"
        )


class _Stopped(BaseException):
    """Raised in the main thread by a termination signal, past every ``except Exception``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _temporaries_removed_on_signals() -> Iterator[None]:
    """On SIGTERM, SIGINT or SIGHUP: delete this run's temporary files and exit 128 + signal.

    The handlers are this command's only (restored afterwards); outputs already
    renamed into place are complete and stay.
    """

    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        io.remove_temporaries()
        raise _Stopped(signum)

    names = ("SIGTERM", "SIGINT", "SIGHUP")
    signums = [getattr(signal, n) for n in names if hasattr(signal, n)]
    previous: dict[int, Any] = {}
    try:
        for signum in signums:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    except BaseException as e:
        # The handler's exception can be swallowed when the signal lands in a finaliser
        # (Python prints "Exception ignored" and goes on); the write then fails on its removed
        # temporary file. A signal received is the reason either way.
        if not received:
            raise
        io.remove_temporaries()
        signum = e.signum if isinstance(e, _Stopped) else received[0]
        name = signal.Signals(signum).name
        click.echo(f"Error: stopped by {name}; no partial or temporary file left", err=True)
        raise click.exceptions.Exit(128 + signum) from None
    finally:
        for signum, h in previous.items():
            signal.signal(signum, h)


@click.command(
    short_help="Describe a model (metadata, halo, legal tiles) and the working providers."
)
@o.model_opt
@o.normalization_opt
@click.option("--json", "as_json", is_flag=True, help="Print the model metadata as JSON.")
def info(model: Path, normalization: Normalization | None, as_json: bool) -> None:
    """Describe a model (default: the shipped one) and the execution providers here.

    An ONNX file without unet-edge metadata is probed: legal input sizes, halo,
    alignment, channels and output kind are measured by running it.

    \b
    Example:
      unet-edge info -m model.onnx --json
    """
    from ..engines import select
    from ..models.open import open_model
    from .messages import printable

    src = open_model(model, normalization, probe_only=True)
    mi, g = src.info, src.geometry
    if as_json:
        d = mi.to_dict()
        if src.probe is not None:
            d["geometry"] = src.probe.to_dict()["geometry"]
            d["probed"] = src.probe.to_dict()
        click.echo(json.dumps(d, indent=2, sort_keys=True))
        return
    a = mi.architecture
    network = (
        src.describe()
        if src.probe is not None
        else f"U-Net depth {a.depth}, base width {a.base_width}, padding "
        f"{a.padding.value}, batch norm {a.batch_norm}"
    )
    norm = mi.normalization.to_dict() if normalization or src.probe is None else "not given"
    lines = [
        f"model      {model} ({model.stat().st_size / 1e6:.2f} MB, {src.origin})",
        f"name       {mi.name}  precision {mi.precision.value}",
        f"network    {network}",
        f"input      {mi.channels} channel(s), normalisation {norm}",
        f"pixel size {f'{p.y:g} x {p.x:g} µm' if (p := mi.pixel_size) else 'unknown'}",
        f"classes    {', '.join(mi.class_names)}",
        f"objects    {_objects_line(mi)}",
        f"geometry   halo {g.halo} px, alignment {g.alignment} px, border {mi.border.value}",
        f"tiles      legal inputs {g.legal_text}: "
        + ", ".join(f"{t}->{g.output_size(t)}" for t in g.legal_inputs(g.min_input + 8 * g.step))
        + ", ...",
    ]
    lines.append(f"domain     {domain.describe(mi.domain)}")  # the domain guard's statistics
    if mi.metrics:
        lines.append(f"metrics    {json.dumps(mi.metrics, sort_keys=True)}")
    if mi.provenance:
        lines.append(f"provenance {json.dumps(mi.provenance, sort_keys=True)}")
    lines.append("providers")
    for prov, installed, reason in select.report():
        state = "works" if installed and reason is None else "not installed"
        if installed and reason is not None:
            state = f"installed, not usable: {reason}"
        lines.append(f"  {prov.value:<9} {state}")
    click.echo("\n".join(map(printable, lines)))  # names and provenance come from the file


def _objects_line(mi: Any) -> str:
    """The object classes and how ``--labels`` makes objects of them (the model's rule)."""
    from .models import rule_text

    names = ", ".join(mi.class_names[c] for c in mi.object_classes)
    rule = {"split": "none", "min_size": "0px", **mi.labelling}
    how = f"{rule_text(rule)} (the model's)" if mi.labelling else "connected regions"
    return f"{names}: {how}"
