"""The ``unet-edge`` command line. Thin: each command parses options, calls the
library, and reports.

One module per command group (:mod:`.run`: run, info; :mod:`.model`: export,
quantize, package; :mod:`.training`: train, evaluate; :mod:`.bench`: bench), shared
options in :mod:`.options`. Library errors become one line on stderr and exit
code 1, with the flag that fixes them added here (library messages name no
flag; :attr:`UnetEdgeError.option` names the argument); usage errors exit 2
(click's convention); ``run`` adds 3 (some inputs failed) and 128 + signal.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import UnetEdgeError
from .messages import HINTS, error_line, printable

_EXTRAS = {
    "torch": "train",
    "skimage": "eval",
    "dask": "dask",
    "distributed": "dask",
    "bioimageio": "bioimageio",
}


class _Group(click.Group):
    """Turns unet-edge errors (and a missing optional extra) into one line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UnetEdgeError as e:
            click.echo(error_line(e), err=True)
            ctx.exit(1)
        except ModuleNotFoundError as e:
            extra = _EXTRAS.get((e.name or "").split(".")[0])
            if extra is None:
                raise
            click.echo(
                f"Error: this command needs {e.name}; install it with "
                f"pip install 'unet-edge[{extra}]'",
                err=True,
            )
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except OSError as e:  # before click's own handling, which says nothing
            if not _stdout_broken(e):
                raise
            click.echo(f"Error: cannot write to standard output: {e.strerror or e}", err=True)
            ctx.exit(1)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's ``main``; standard output failing outside a command (``--help``,
        ``--version``) is one line and exit code 1 too."""
        try:
            return super().main(*args, **kwargs)
        except OSError as e:
            if not _stdout_broken(e):
                raise
            click.echo(f"Error: cannot write to standard output: {e.strerror or e}", err=True)
            sys.exit(1)


def _stdout_broken(e: OSError) -> bool:
    """Whether ``e`` came from writing standard output (a full disk, a closed pipe): a
    frame of its traceback was writing to stdout. Stdout is then pointed at the null
    device, so that the interpreter's last flush at exit adds no second message."""
    if e.errno not in (errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
        return False
    frames, tb = [], e.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if not any(_is_stdout(v) for f in frames for v in f.f_locals.values()):
        return False  # an output file on a full disk, say: not ours to word
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    return True


def _is_stdout(value: object) -> bool:
    """Whether ``value`` is the standard output stream (text or binary)."""
    streams = (sys.stdout, sys.__stdout__)
    return any(value is s or value is getattr(s, "buffer", None) for s in streams if s)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="unet-edge")
def main() -> None:
    """U-Net segmentation from training to the microscope.

    \b
    unet-edge run images/ -o results/         # segment with the shipped model
    unet-edge COMMAND -h                      # a command's options and an example
    """
    # tifffile logs what it skips in a damaged file; io turns those into errors of its own
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


def _register() -> None:
    from . import bench, model, models, run, serve, training

    main.add_command(serve.serve)
    main.add_command(models.models)
    for command in (
        run.run,
        run.info,
        model.export,
        model.quantize,
        model.package,
        training.train,
        training.evaluate,
        bench.bench,
    ):
        main.add_command(command)


_register()

__all__ = ["HINTS", "error_line", "main", "printable"]
