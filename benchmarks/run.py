"""``make bench``: the benchmark on this project's data, then this project's targets.

    python benchmarks/run.py                  # the full run, minutes on 2 cores
    python benchmarks/run.py --quick -v       # seconds: 512x512 only, one repeat
    python benchmarks/run.py --sizes 512,4096 --backends torch,ort-fp32

Every option of ``unet-edge bench`` applies. Defaults here: results in
``benchmarks/results/`` and, unless ``--data`` is given, the ISBI 2012
training slices beside the repository (``../shared/data/isbi2012/train``),
int8 calibrated on slices 00-09 and fidelity on 20-24 (the shipped model was
trained on 00-19 and validated on 20-24). Then :mod:`targets` checks the
saved result and adds its table to ``bench.md`` and ``bench.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import targets  # beside this script (benchmarks/ is not a package)

from unet_edge.cli import main

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ISBI = ROOT.parent / "shared" / "data" / "isbi2012" / "train"


def _given(argv: list[str], *names: str) -> bool:
    return any(a in names or a.split("=")[0] in names for a in argv)


def bench_args(argv: list[str]) -> list[str]:
    """The ``unet-edge bench`` command line: this project's defaults, then ``argv`` (wins)."""
    args = ["bench", "-o", str(RESULTS)]
    if not _given(argv, "--data") and (ISBI / "image").is_dir():
        args += ["--data", str(ISBI)]
        if not _given(argv, "--calibration"):
            args += ["--calibration", "00-09"]
        if not _given(argv, "--fidelity"):
            args += ["--fidelity", "20-24"]
    elif not _given(argv, "--data"):
        print(f"ISBI 2012 data not found at {ISBI}; using the packaged sample", file=sys.stderr)
    return args + argv


def run(argv: list[str]) -> int:
    try:
        result = main(bench_args(argv), standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    if not isinstance(result, dict):  # --help, or an error already reported (exit code)
        return int(result or 0)
    checked = targets.apply(Path(result["config"]["out_dir"]))
    print(targets.markdown(checked, result["reference"]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
