"""Recipe of the shipped default model: train on ISBI 2012 slices 00-19, validate on 20-24.

    python export/isbi2012-default/train.py [DATA_DIR] [OUTPUT]

Defaults: DATA_DIR = ../shared/data/isbi2012/train relative to the repository
root, OUTPUT = /tmp/train/isbi2012-default.pt. Prints one line per 50 steps
and every validation. The model card (MODEL_CARD.md) records what it reached.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from unet_edge.training.loop import TrainConfig, TrainEvent, parse_names, train

ROOT = Path(__file__).resolve().parents[2]

CONFIG = TrainConfig(
    width=16,
    depth=4,
    tile=444,
    steps=5000,
    lr=5e-4,
    optimizer="adam",
    schedule="cosine",
    val_names=parse_names("20-24"),
    seed=2012,
    val_every=500,
    threads=2,
    class_names=("membrane", "cell"),
    name="isbi2012-default",
)


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data/isbi2012/train"
    output = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/train/isbi2012-default.pt")
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print("config", json.dumps(CONFIG.to_dict()), flush=True)

    def report(e: TrainEvent) -> None:
        if e.step % 50 == 0 or e.val is not None:
            line = f"step {e.step}/{e.steps} loss {e.loss:.4f} lr {e.lr:.2e} t {e.elapsed_s:.0f}s"
            if e.val is not None:
                line += " val " + json.dumps({k: round(v, 4) for k, v in e.val.items()})
                line += " BEST" if e.best else ""
            print(line, flush=True)

    result = train(CONFIG, data, output, progress=report)
    print(
        "done",
        json.dumps(
            {
                "best_step": result.best_step,
                "best_metrics": result.best_metrics,
                "parameters": result.parameters,
                "train_s": round(result.elapsed_s, 1),
                "wall_s": round(time.time() - t0, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
