"""Make docs/napari_widget.png: the napari window with the ISBI sample segmented by the widget.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv-napari/bin/python docs/napari_screenshot.py

Headless under Xvfb (napari's canvas needs OpenGL, which Qt's offscreen
platform lacks). Opens the plugin's sample and widget as a user would (through
the plugin's manifest), runs the widget with the shipped model, waits for the
worker, and saves the whole window, widget included, as a 128-colour PNG (under 300 KB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "napari_widget.png"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=OUT)
    args = ap.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="unet-edge in napari", show=True)
    viewer.window.resize(1200, 760)
    viewer.open_sample("unet-edge", "isbi2012")
    _dock, widget = viewer.window.add_plugin_dock_widget("unet-edge", "U-Net segmentation")
    widget.run()
    deadline = time.monotonic() + 300
    while not widget.run_button.isEnabled():  # the worker thread runs; the GUI keeps serving
        QApplication.processEvents()
        if time.monotonic() > deadline:
            sys.exit("the widget did not finish within 300 s")
        time.sleep(0.02)
    if not widget.status.text().startswith("done"):
        sys.exit(f"the widget failed: {widget.status.text()}")
    viewer.layers["ISBI 2012 sample mask"].opacity = 0.5
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    shot = viewer.screenshot(canvas_only=False, flash=False)  # (H, W, 4) uint8 RGBA
    _save_small(shot[..., :3], args.output)
    viewer.close()
    size = args.output.stat().st_size // 1024
    print(f"wrote {args.output} ({size} KiB, {shot.shape[1]}x{shot.shape[0]} px)")
    return 0


def _save_small(rgb: object, path: Path) -> None:
    """Write an RGB array as a 128-colour PNG (a third of the size of a true-colour one)."""
    from PIL import Image

    Image.fromarray(rgb).quantize(128, dither=Image.Dither.NONE).save(path, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
