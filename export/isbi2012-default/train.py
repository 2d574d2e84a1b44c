"""Recipe of the shipped default model: train on ISBI 2012 slices 00-19, validate on 20-24.

    python export/isbi2012-default/train.py [DATA_DIR] [OUTPUT] [--steps N] [--val-every N]
                                            [--resume CHECKPOINT]

Defaults: DATA_DIR = ../shared/data/isbi2012/train relative to the repository
root, OUTPUT = /tmp/train/isbi2012-default.pt, and CONFIG below: the package's
training defaults (``TrainConfig()``, which are this recipe's settings) plus
only the validation split and the model's name, so the two cannot drift. Prints
one line per 50 steps and every validation. The model card (MODEL_CARD.md)
records what it reached and how it was run (3000 steps, then ``--steps 6000
--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from unet_edge.datasets import parse_names
from unet_edge.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]

# Everything else is TrainConfig's default; only what this model adds is named here.
CONFIG = TrainConfig(val_names=parse_names("20-24"), name="isbi2012-default")


def main() -> None:
    from unet_edge.training.loop import TrainEvent, train  # torch: only when training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data", nargs="?", type=Path, default=ROOT.parent / "shared/data/isbi2012/train"
    )
    parser.add_argument(
        "output", nargs="?", type=Path, default=Path("/tmp/train/isbi2012-default.pt")
    )
    parser.add_argument("--steps", type=int, default=CONFIG.steps)
    parser.add_argument("--val-every", type=int, default=CONFIG.val_every)
    parser.add_argument("--resume", type=Path, default=None)
    parser.add_argument("--init", type=Path, default=None, help="start from these weights")
    parser.add_argument("--lr", type=float, default=CONFIG.lr)
    args = parser.parse_args()
    config = dataclasses.replace(CONFIG, steps=args.steps, val_every=args.val_every, lr=args.lr)
    data, output = args.data, args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(
        "config", json.dumps(config.to_dict()), "resume", args.resume, "init", args.init, flush=True
    )

    def report(e: TrainEvent) -> None:
        if e.step % 50 == 0 or e.val is not None:
            line = f"step {e.step}/{e.steps} loss {e.loss:.4f} lr {e.lr:.2e} t {e.elapsed_s:.0f}s"
            if e.val is not None:
                line += " val " + json.dumps({k: round(v, 4) for k, v in e.val.items()})
                line += " BEST" if e.best else ""
            print(line, flush=True)

    result = train(
        config, data, output, progress=report, resume=args.resume, init=args.init, overwrite=True
    )
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
