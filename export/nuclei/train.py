"""Recipe of the shipped nuclei model: generated images only, weight-map target, export, score.

    python export/nuclei/train.py [--work DIR] [--steps N] [--images N] [--threads N]
                                  [--style default|broad] [--lr LR] [--init CKPT]
                                  [--resume LAST]
                                  [--phase all|data|train|export|score]

Phases (``all`` runs them in order; each reads what the one before wrote in
``--work``, default /tmp/train/nuclei):

1. ``data``: ``--images`` (default 800) 256x256 training images from
   :func:`unet_edge.training.synthetic.write_folder` with seed 21 in
   ``WORK/train`` (``--style``: the generator's ranges), and 40 held-out images
   with seed 2021 in ``WORK/heldout``
   (never trained on, never tuned on: they only give metrics.json).
2. ``train``: CONFIG below (instance labels, the paper's two-class target
   with the border weight map, which beat the three-class target in
   benchmarks/touching_cells.py) on ``WORK/train`` -> ``WORK/nuclei.pt`` (the
   last weights; no validation split: nothing is chosen on data). Prints a
   line per 100 steps. ``--init`` starts from other weights, ``--resume``
   goes on from ``WORK/nuclei.last.pt`` (MODEL_CARD.md: how the shipped
   weights were run).
3. ``export``: ``WORK/nuclei.onnx`` (``unet_edge.training.export``) with its
   labelling rule (LABELLING) and the domain statistics of 200 training images
   in its metadata; copied by hand to ``unet_edge/data/nuclei.onnx``.
4. ``score``: instance F1 at IoU 0.5, merges and splits of the exported model
   (``run --labels``'s labelling, and connected regions for comparison;
   :func:`unet_edge.evaluate.instance_metrics`) on the held-out images ->
   ``WORK/metrics.json`` (copied beside this file).

No real image is used anywhere: images shipped in other packages (skimage,
cellpose, stardist, DSB 2018) are kept for judging the model, not for training
or tuning it. See MODEL_CARD.md for what the run reached.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from unet_edge.training.config import TrainConfig

HERE = Path(__file__).resolve().parent
TRAIN_SEED, HELDOUT_SEED, HELDOUT = 21, 2021, 40
TRAINING_DATA = (
    "generated fluorescence-like images of touching nuclei "
    "(unet_edge.training.synthetic, {style} ranges, seed 21, {n} images of 256x256 px, "
    "instance labels)"
)

CONFIG = TrainConfig(
    width=16,
    depth=3,
    tile=196,  # output 108 x 108: several nuclei of up to 44 px with their neighbours
    steps=8000,
    batch_size=4,
    lr=5e-4,
    seed=21,
    val_every=500,  # no validation images: the latest weights are written every 500 steps
    threads=1,
    labels="instances",
    # the paper's target: touching lines as background, weighted by the border map (w0 = 10,
    # sigma = 5 px); it beat the three-class target in benchmarks/touching_cells.py
    target="two-class",
    classes=2,
    class_names=("background", "nucleus"),
    objects=("nucleus",),
    # fluorescence: sparse bright objects on a dark background, not clipped
    norm_low=1.0,
    norm_high=99.8,
    norm_clip=False,
    # no camera-offset augmentation: it clips dim 12-bit images to black (TrainConfig.exposure)
    exposure=0.0,
    name="nuclei",
)


def styles() -> dict[str, Any]:
    """The generator's ranges: ``default`` (NucleiStyle()) and ``broad`` (larger and sparser
    images, nuclei up to 60 px, dimmer nuclei beside bright ones, more lone nuclei): real
    stains vary more than the default ranges (MODEL_CARD.md)."""
    from unet_edge.training.synthetic import NucleiStyle

    broad = NucleiStyle(diameter=(8.0, 60.0), coverage=(0.01, 0.45), dim_spread=0.7, alone=0.45)
    return {"default": NucleiStyle(), "broad": broad}


def data(work: Path, images: int, style: str = "default") -> None:
    from unet_edge.training.synthetic import write_folder

    write_folder(work / "train", images, TRAIN_SEED, style=styles()[style])
    write_folder(work / "heldout", HELDOUT, HELDOUT_SEED)  # always the default ranges
    print(f"wrote {images} training and {HELDOUT} held-out images to {work}", flush=True)


def train(
    work: Path, config: TrainConfig, resume: Path | None = None, init: Path | None = None
) -> None:
    from unet_edge.training.loop import TrainEvent
    from unet_edge.training.loop import train as run

    def report(e: TrainEvent) -> None:
        if e.step % 100 == 0 or e.step == e.steps:
            print(
                f"step {e.step}/{e.steps} loss {e.loss:.4f} lr {e.lr:.2e} "
                f"{e.rate:.2f} steps/s, {e.eta_s / 60:.1f} min left",
                flush=True,
            )

    print("config", json.dumps(config.to_dict()), flush=True)
    result = run(
        config,
        work / "train",
        work / "nuclei.pt",
        progress=report,
        overwrite=True,
        resume=resume,
        init=init,
    )
    print(f"done: {result.elapsed_s / 60:.1f} min, {result.parameters} parameters", flush=True)


#: How its mask becomes nuclei, stated in its metadata (``output.labelling``) so that
#: ``run --labels`` and ``label()`` use it: chosen on generated validation images (seed 777,
#: neither training nor held-out) by ``python benchmarks/nuclei_labelling.py``.
LABELLING = {"split": "watershed", "min_size": "10px"}
DOMAIN_IMAGES = 200  # training images whose statistics the domain guard compares with


def export(work: Path) -> None:
    from unet_edge.evaluate import read_array
    from unet_edge.training.export import export_checkpoint, stamp_domain, stamp_labelling

    path = work / "nuclei.onnx"
    report = export_checkpoint(
        work / "nuclei.pt",
        path,
        overwrite=True,
        provenance={"recipe": "export/nuclei/train.py"},
    )
    print(report.summary(), flush=True)
    stamp_labelling(path, LABELLING)
    train = sorted((work / "train" / "image").glob("*.tif"))[:DOMAIN_IMAGES]
    stamp_domain(path, [read_array(p) for p in train])
    print(f"stated labelling {LABELLING}; domain statistics of {len(train)} images", flush=True)


def score(work: Path) -> dict[str, float]:
    """Instance metrics of the exported model on the held-out images -> WORK/metrics.json:
    labelled by its stated rule (``run --labels``) and, for comparison, as connected regions."""
    from unet_edge.evaluate import score_instances

    result = score_instances(work / "nuclei.onnx", work / "heldout")
    plain = score_instances(
        work / "nuclei.onnx", work / "heldout", label_options={"split": "none", "min_size": 0}
    )
    result["labelling"] = f"run --labels: the stated rule {LABELLING}"
    result["connected_regions"] = plain["mean"]
    (work / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["mean"]), flush=True)
    print("connected regions:", json.dumps(plain["mean"]), flush=True)
    return dict(result["mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/train/nuclei"))
    parser.add_argument("--steps", type=int, default=CONFIG.steps)
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--style", choices=["default", "broad"], default="default")
    parser.add_argument("--threads", type=int, default=CONFIG.threads)
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="go on from WORK/nuclei.last.pt (--steps may change)",
    )
    parser.add_argument("--init", type=Path, default=None, help="start from these weights")
    parser.add_argument("--lr", type=float, default=CONFIG.lr)
    parser.add_argument(
        "--phase", choices=["all", "data", "train", "export", "score"], default="all"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    config = CONFIG.__class__(
        **{
            **CONFIG.to_dict(),
            "steps": args.steps,
            "threads": args.threads,
            "lr": args.lr,
            "training_data": TRAINING_DATA.format(n=args.images, style=args.style),
        }
    )
    if args.phase in ("all", "data"):
        data(args.work, args.images, args.style)
    if args.phase in ("all", "train"):
        train(args.work, config, args.resume, args.init)
    if args.phase in ("all", "export"):
        export(args.work)
    if args.phase in ("all", "score"):
        score(args.work)
    print(f"wall {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
