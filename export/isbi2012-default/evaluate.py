"""Score the shipped model on ISBI 2012 slices 20-24 (the validation split) through the runtime.

    python export/isbi2012-default/evaluate.py [MODEL_ONNX] [DATA_DIR] [--json OUT]

Defaults: the package's default model (unet_edge/data/default.onnx) and
../shared/data/isbi2012/train. Uses the same Segmenter as `unet-edge run`
(CPU provider); the mask is the arg-max over classes (threshold 0.5 on the
cell probability). Prints the mean and per-image metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unet_edge.datasets import parse_names
from unet_edge.evaluate import evaluate_model

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, default=None)
    parser.add_argument(
        "data", nargs="?", type=Path, default=ROOT.parent / "shared/data/isbi2012/train"
    )
    parser.add_argument("--names", default="20-24")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = evaluate_model(
        args.model, args.data / "image", args.data / "label", names=parse_names(args.names)
    )
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
