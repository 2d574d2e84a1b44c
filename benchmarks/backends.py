"""Speed and fidelity of every backend on one model: the benchmark table of the README.

    python benchmarks/backends.py                 # the full run, a few minutes on 2 cores
    python benchmarks/backends.py --quick -v      # seconds: 512x512 only, one repeat
    python benchmarks/backends.py -m model.onnx --sizes 512,4096 --backends torch,ort-fp32

The same as ``unet-edge bench`` (all options apply); the suite itself lives in
:mod:`unet_edge.bench` so that the installed command and this script cannot
drift apart. Results go to ``benchmarks/results/``: ``bench.json`` (every
number), ``bench.md`` (the tables) and ``bench.png`` (throughput by size and
the tile sweep).

What it measures, on the same model, images and tiles for every backend:
PyTorch eager (the baseline), ONNX Runtime CPU fp32 and int8 (QDQ, calibrated
on ISBI slices 00-04), CUDA and TensorRT fp32/fp16 where they really work, and
OpenVINO (fp32 hint) when installed. Per stage (read, normalise, tile, infer,
stitch, write) medians after warm-up, Mpx/s, p50/p99 latency, peak memory,
model GFLOP/s against a numpy SGEMM peak measured in the same run, and fidelity
against ORT fp32 on ISBI slices 20-24 (max |dp|, pixels with another class,
adapted Rand error change).
"""

from __future__ import annotations

import sys

from unet_edge.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
