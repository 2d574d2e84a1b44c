"""Generate (or check) the module table and import diagram in ARCHITECTURE.md from the code.

    python docs/architecture.py          # rewrite the generated parts of ARCHITECTURE.md
    python docs/architecture.py --check  # exit 1 if they are stale or a module breaks its rules

The imports are read from the source with ``ast`` (module-level and lazy
imports inside functions alike), so the diagram is the code's, not a
drawing. Each module's row in :data:`MODULES` says what it owns and which
project modules and third-party packages it may import; ``--check`` fails on
any import outside that list, on a module missing from the table, and on a
table row whose module is gone.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unet_edge"
DOC = ROOT / "ARCHITECTURE.md"
BEGIN, END = "<!-- BEGIN GENERATED: docs/architecture.py -->", "<!-- END GENERATED -->"

RUNTIME_THIRD_PARTY = {"numpy", "cv2", "onnx", "onnxruntime", "tifffile", "click"}
# Optional packages a runtime module may import lazily, inside a function, for an extra.
OPTIONAL = {"dask", "distributed", "zarr", "psutil", "matplotlib", "openvino", "skimage", "scipy"}

#: module -> (what it owns, project modules it may import, third-party packages it may import)
MODULES: dict[str, tuple[str, set[str], set[str]]] = {
    "errors": ("every exception: UnetEdgeError and its subclasses", set(), set()),
    "config": (
        "frozen dataclasses and enums: architecture, normalisation, precision, drop policy",
        {"errors"},
        set(),
    ),
    "geometry": (
        "size arithmetic: input <-> output, halo, alignment, legal tiles",
        {"config", "errors"},
        set(),
    ),
    "metadata": (
        "the ONNX metadata schema: write() and read(), validated ModelInfo",
        {"config", "errors", "geometry"},
        {"onnx"},
    ),
    "processing": (
        "pixel values: per-image scaling statistics, normalise, stack rule, mask, overlay",
        {"config", "errors"},
        {"numpy", "cv2"},
    ),
    "tiling": (
        "tile plans and THE kernel: read mirrored windows -> prepare -> infer -> stitch",
        {"errors", "geometry"},
        {"numpy", "cv2"},
    ),
    "cpu": (
        "what this CPU is: model name, instruction-set flags, whether int8 kernels saturate",
        set(),
        set(),
    ),
    "cost": (
        "FLOPs and activation memory of a tile (tile choice)",
        {"config", "errors", "geometry"},
        set(),
    ),
    "providers": (
        "execution providers: names, options, availability, honest fallback",
        {"config", "errors", "openvino_backend"},
        {"numpy", "onnx", "onnxruntime"},
    ),
    "openvino_backend": (
        "OpenVINO on the CPU as a provider: compiled per tile shape, precision hint, "
        "a request per thread",
        {"config", "errors"},
        {"numpy", "openvino"},
    ),
    "runtime": (
        "Segmenter: owns the ONNX Runtime session, the only place that runs the graph",
        {
            "cost",
            "config",
            "cpu",
            "errors",
            "metadata",
            "processing",
            "providers",
            "sources",
            "tiling",
            "streaming",
        },
        {"numpy"},
    ),
    "sources": (
        "what a model file is: unet-edge ONNX, foreign ONNX (probed), bioimage.io package",
        {"bioimage", "config", "errors", "geometry", "metadata", "probe"},
        {"numpy"},
    ),
    "probe": (
        "probing a graph without metadata: legal sizes, shrink, alignment, margin, output kind",
        {"errors", "geometry"},
        {"numpy", "onnxruntime"},
    ),
    "bioimage": (
        "bioimage.io packages: the variant graph and rdf written, packages read and run",
        {"config", "errors", "geometry", "io", "metadata", "processing", "sources", "training"},
        {"numpy", "onnx", "onnxruntime", "bioimageio"},
    ),
    "streaming": (
        "frames from a live source through the kernel on a thread pipeline",
        {"config", "errors", "processing", "tiling", "runtime"},
        {"numpy"},
    ),
    "large": (
        "larger-than-memory TIFFs: window reader + band-by-band striped writer around the kernel",
        {"io", "processing", "tiling", "runtime"},
        {"numpy"},
    ),
    "dask_backend": (
        "Dask blocks as window readers around the kernel; zarr output",
        {"errors", "io", "large", "processing", "providers", "runtime", "tiling"},
        {"numpy"},
    ),
    "imagemeta": (
        "what an output says about itself: pixel size (OME, ImageJ, resolution tags), "
        "ImageJ hyperstack / OME-TIFF arguments, provenance, PNG text chunks; no file access",
        {"errors"},
        set(),
    ),
    "io": (
        "the only file I/O: images in, masks out, atomic writes, provenance, TIFF windows",
        {"errors", "imagemeta"},
        {"numpy", "cv2", "tifffile"},
    ),
    "datasets": ("image/label folder pairing and name ranges", {"errors"}, {"numpy"}),
    "evaluate": (
        "segmentation metrics (pixel, Rand, VI) and scoring a model on a folder",
        {"datasets", "errors", "io", "processing", "runtime"},
        {"numpy"},
    ),
    "precision": (
        "fp16 conversion and int8 calibration/quantisation of exported graphs",
        {
            "config",
            "cpu",
            "errors",
            "io",
            "metadata",
            "processing",
            "tiling",
            "providers",
            "runtime",
        },
        {"numpy", "onnx", "onnxruntime"},
    ),
    "files": (
        "segment_file: one file in, mask/probabilities/overlay out, in memory or windowed",
        {"config", "errors", "io", "large", "processing", "runtime"},
        {"numpy", "tifffile"},
    ),
    "bench": (
        "the benchmark harness (speed and fidelity of every backend on the same tiles)",
        {
            "cost",
            "cpu",
            "datasets",
            "errors",
            "evaluate",
            "io",
            "metadata",
            "precision",
            "processing",
            "providers",
            "runtime",
            "tiling",
            "training",
        },
        {"numpy", "onnxruntime", "torch"},
    ),
    "napari": (
        "the napari plugin (extra napari): segmentation widget with progress/cancel, reader for "
        "run's masks/probabilities (calibration, provenance via io/imagemeta)",
        {"errors", "imagemeta", "io", "processing", "providers", "runtime"},
        {"numpy", "napari", "qtpy"},
    ),
    "cli": (
        "click commands, one module per group, shared options in cli/options.py; thin",
        {"*"},
        {"click", "numpy", "torch"},
    ),
    "training": (
        "the torch side: model, data, augmentation, weights, loss, loop on CPU or GPU, checkpoint, "
        "export",
        {"*"},
        {"numpy", "cv2", "onnx", "onnxruntime", "torch"},
    ),
}
RUNTIME_NEVER = {"torch"}  # outside training/ (and the optional bench baseline, lazily)


def is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0] if len(rel.parts) > 1 else rel.name


def imports(path: Path) -> tuple[set[str], set[str], set[str]]:
    """(project modules, third-party top-level packages, those imported only lazily)."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_of(path)
    inner = len(path.relative_to(PACKAGE).parts) > 1
    project: set[str] = set()
    external: set[str] = set()
    top: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against unet_edge/
                up = node.level - (1 if inner else 0)
                base = (node.module or "").split(".")[0] if up <= 1 else ""
                if inner and node.level == 1:
                    continue  # within a subpackage
                names = [base] if base else [a.name for a in node.names]
                project.update(n for n in names if n and n != here and is_module(n))
                continue
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            root = n.split(".")[0]
            if root == "unet_edge":
                sub = n.split(".")[1] if "." in n else ""
                if sub and sub != here:
                    project.add(sub)
            elif root and root not in sys.stdlib_module_names and root != "__future__":
                external.add(root)
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            top.add(node.module.split(".")[0])
    return project, external, external - top


def scan() -> dict[str, tuple[set[str], set[str], set[str]]]:
    found: dict[str, tuple[set[str], set[str], set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        mod = module_of(path)
        p, e, lazy = imports(path)
        old = found.get(mod, (set(), set(), set()))
        found[mod] = (old[0] | p, old[1] | e, old[2] | lazy)
    return found


def problems(found: dict[str, tuple[set[str], set[str], set[str]]]) -> list[str]:
    out = []
    for mod in sorted(set(found) - set(MODULES)):
        out.append(f"unet_edge/{mod} is not in the module table (docs/architecture.py MODULES)")
    for mod in sorted(set(MODULES) - set(found)):
        out.append(f"the module table names {mod}, which no longer exists")
    for mod, (project, external, lazy) in sorted(found.items()):
        if mod not in MODULES:
            continue
        _, may, third = MODULES[mod]
        if "*" not in may:
            out += [f"{mod} imports {m}, not in its allowed list" for m in sorted(project - may)]
        for pkg in sorted(external - third):
            if not (pkg in OPTIONAL and pkg in lazy):
                out.append(f"{mod} imports {pkg}, not in its allowed packages")
        if mod not in ("training", "cli", "bench") and external & RUNTIME_NEVER:
            out.append(f"{mod} is runtime code but imports torch")
        if mod in ("cli", "bench") and "torch" in external - lazy:
            out.append(f"{mod} imports torch at module level; import it lazily")
    return out


def render(found: dict[str, tuple[set[str], set[str], set[str]]]) -> str:
    rows = ["| module | owns | imports (project) | third-party |", "| --- | --- | --- | --- |"]
    for mod, (owns, _, _) in MODULES.items():
        project, external, lazy = found.get(mod, (set(), set(), set()))
        ext = ", ".join(sorted(f"{e} (lazy)" if e in lazy else e for e in external))
        rows.append(f"| `{mod}` | {owns} | {', '.join(sorted(project)) or '-'} | {ext or '-'} |")
    graph = ["```mermaid", "graph TD"]
    for mod, (project, _, _) in sorted(found.items()):
        graph += [f"    {mod} --> {dep}" for dep in sorted(project) if dep in found]
    graph.append("```")
    return "\n".join([BEGIN, "", *rows, "", *graph, "", END])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if ARCHITECTURE.md is stale")
    args = ap.parse_args()
    found = scan()
    bad = problems(found)
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + render(found) + tail
    if args.check:
        if new != text:
            bad.append("ARCHITECTURE.md is stale: run python docs/architecture.py")
    elif not bad:
        DOC.write_text(new)
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
