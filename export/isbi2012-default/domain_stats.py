"""Record the domain statistics of the shipped EM model in its metadata (key ``domain``).

The statistics are those of ISBI training slices 00-19 only (never the held-out
20-24, nor the test stack), as the shipped model itself sees them
(:func:`unet_edge.domain.measure`). Only the ``domain`` key of the model's
description changes: the file is re-read right before writing and every other
key is checked unchanged.

    python export/isbi2012-default/domain_stats.py [--model unet_edge/data/default.onnx]
        [--data ../shared/data/isbi2012] [--threshold 6] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAIN = tuple(f"{i:02d}" for i in range(20))


def main() -> None:
    from unet_edge import Segmenter, domain
    from unet_edge.io import read_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "unet_edge" / "data" / "default.onnx")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "isbi2012")
    ap.add_argument("--threshold", type=float, default=domain.THRESHOLD)
    ap.add_argument("--dry-run", action="store_true", help="print the statistics, write nothing")
    args = ap.parse_args()
    images = [read_image(args.data / "train" / "image" / f"{n}.png") for n in TRAIN]
    source = "ISBI 2012 training slices 00-19, through this model"
    with Segmenter(args.model) as seg:
        stats = domain.measure(seg, images, args.threshold, source)
    print(json.dumps(stats.to_dict(), indent=1))
    if not args.dry_run:
        write_domain(args.model, stats.to_dict())


def write_domain(path: Path, section: dict[str, object]) -> None:
    """Set the ``domain`` key of the model description of ``path``, nothing else."""
    import onnx

    from unet_edge import metadata

    model = onnx.load(str(path))  # re-read now: another key may have changed meanwhile
    entry = next(p for p in model.metadata_props if p.key == metadata.KEY)
    before = json.loads(entry.value)
    after = {**before, "domain": section}
    metadata.from_dict(after)  # valid for the runtime before it is written
    entry.value = json.dumps(after, sort_keys=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        check = json.loads(metadata.load_props(Path(tmp))[metadata.KEY])
        same = {k: v for k, v in check.items() if k != "domain"}
        assert same == {k: v for k, v in before.items() if k != "domain"}, "other keys changed"
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote the domain statistics into {path} (other keys unchanged)")


if __name__ == "__main__":
    main()
