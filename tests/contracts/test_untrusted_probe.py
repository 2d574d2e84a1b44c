"""Foreign graphs the probe must refuse: it measures, then verifies, within a bounded cost.

Each graph is built with ``onnx.helper`` and behaves like a U-Net on part of
what a naive probe tries (uniform noise), but not on real images: a constant
output, a random one, a branch on a global statistic of the input, an output
shifted against its input, 1024-channel full-resolution convolutions. Each is
refused by a one-line :class:`ProbeError` naming the model file, through the
library, ``Segmenter`` and the CLI (nothing written); the good networks are
still accepted (tests/unit/test_models_probe.py, tests/contracts/test_bioimage.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from unet_edge import Normalization, Segmenter, tiling
from unet_edge.cli import main
from unet_edge.errors import ModelError, ProbeError
from unet_edge.io import read_image
from unet_edge.models.probe import probe
from unet_edge.models.probe_cost import flops_per_pixel

SAMPLE = Path(__file__).resolve().parents[2] / "unet_edge" / "data" / "sample_isbi2012.png"
NORM = Normalization(mode="percentile", low=1, high=99.8, mean=0.5, std=0.25, clip=True)


class Net:
    """A graph under construction: nodes, weights, unique tensor names."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.k = 0

    def name(self, what: str) -> str:
        self.k += 1
        return f"{what}{self.k}"

    def const(self, value: np.ndarray) -> str:
        n = self.name("c")
        self.weights.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def op(self, op: str, *inputs: str, **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, pad: bool = True) -> str:
        w = (self.rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.1).astype(np.float32)
        pads = [k // 2] * 4 if pad else [0] * 4
        return self.op("Conv", x, self.const(w), self.const(b), pads=pads)

    def unet(self, x: str, width: int = 4) -> str:
        """A small same-padded U-Net body (depth 2): logits (N, 2, H, W)."""
        a = self.op("Relu", self.conv(x, 1, width))
        b = self.op("Relu", self.conv(self.pool(a), width, width))
        c = self.op("Relu", self.conv(self.pool(b), width, width))
        b2 = self.op("Add", b, self.up(c))
        a2 = self.op("Add", a, self.up(self.op("Relu", self.conv(b2, width, width))))
        return self.conv(self.op("Relu", a2), width, 2)

    def pool(self, x: str) -> str:
        return self.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])

    def up(self, x: str) -> str:
        scales = self.const(np.array([1, 1, 2, 2], np.float32))
        return self.op("Resize", x, "", scales, mode="nearest")

    def save(self, path: Path, y: str, out_shape: list[object] | None = None) -> Path:
        self.nodes.append(helper.make_node("Identity", [y], ["y"]))
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
            [
                helper.make_tensor_value_info(
                    "y", TensorProto.FLOAT, out_shape or ["n", 2, "h", "w"]
                )
            ],
            self.weights,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return path


def good(path: Path) -> Path:
    """The small U-Net itself (the control: accepted)."""
    net = Net()
    return net.save(path, net.unet("x"))


def constant(path: Path) -> Path:
    """The U-Net's head with zero weights: its bias, whatever the image."""
    net = Net()
    body = net.op("Relu", net.conv("x", 1, 4))
    w = net.const(np.zeros((2, 4, 3, 3), np.float32))
    return net.save(
        path, net.op("Conv", body, w, net.const(np.array([0.3, -0.2], np.float32)), pads=[1] * 4)
    )


def random_noise(path: Path) -> Path:
    """The U-Net plus a little random noise (a RandomUniformLike left in the graph)."""
    net = Net()
    y = net.unet("x")
    noise = net.op("RandomUniformLike", y, low=0.0, high=1e-3)
    return net.save(path, net.op("Add", y, noise))


def global_branch(path: Path) -> Path:
    """The U-Net when the image's mean is above 0.4 (uniform noise: 0.5), its negation (the
    other class) below: right on the probe's noise, wrong on dark parts of real images."""
    net = Net()
    mean = net.op("ReduceMean", "x", keepdims=0)
    cond = net.op("Greater", mean, net.const(np.array(0.4, np.float32)))
    body = Net(seed=0)
    body.k = 1000  # names apart from the outer graph's
    y = body.unet("x")
    then = helper.make_graph(
        [*body.nodes, helper.make_node("Identity", [y], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
        body.weights,
    )
    neg = helper.make_graph(
        [*body.nodes, helper.make_node("Neg", [y], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
        body.weights,
    )
    return net.save(path, net.op("If", cond, then_branch=then, else_branch=neg))


def shifted(path: Path) -> Path:
    """The U-Net's output moved 3 px down and right (zeros enter at the top and left)."""
    net = Net()
    y = net.unet("x")
    padded = net.op("Pad", y, net.const(np.array([0, 0, 3, 3, 0, 0, 0, 0], np.int64)))
    starts, ends = net.const(np.array([0, 0], np.int64)), net.const(np.array([-3, -3], np.int64))
    return net.save(
        path, net.op("Slice", padded, starts, ends, net.const(np.array([2, 3], np.int64)))
    )


def shifted_valid(path: Path) -> Path:
    """A valid 7x7 convolution picking its window's top-left pixel: no padding anywhere,
    equivariant up to the edges, and its output 3 px off its input."""
    net = Net()
    a = net.op("Relu", net.conv("x", 1, 4, k=3, pad=False))
    delta = np.zeros((4, 4, 7, 7), np.float32)
    delta[np.arange(4), np.arange(4), 0, 0] = 1.0
    moved = net.op("Conv", a, net.const(delta))
    return net.save(path, net.conv(moved, 4, 2, k=1, pad=False))


def heavy(path: Path) -> Path:
    """1024 channels at full resolution, weights made by ConstantOfShape: a few hundred bytes
    of graph, ~38 MFLOP per pixel (minutes for a probe's few dozen runs)."""
    net = Net()
    shape = net.const(np.array([1024, 1024, 3, 3], np.int64))
    fill = helper.make_tensor("v", TensorProto.FLOAT, [1], [1e-3])
    w = net.op("ConstantOfShape", shape, value=fill)
    w0 = net.op("ConstantOfShape", net.const(np.array([1024, 1, 3, 3], np.int64)), value=fill)
    w2 = net.op("ConstantOfShape", net.const(np.array([2, 1024, 1, 1], np.int64)), value=fill)
    a = net.op("Conv", "x", w0, pads=[1] * 4)
    b = net.op("Conv", net.op("Conv", a, w, pads=[1] * 4), w, pads=[1] * 4)
    return net.save(path, net.op("Conv", b, w2))


def non_finite(path: Path) -> Path:
    """The U-Net's logits divided by zero."""
    net = Net()
    return net.save(path, net.op("Div", net.unet("x"), net.const(np.array(0.0, np.float32))))


BAD: list[tuple[str, Callable[[Path], Path], str]] = [
    ("constant", constant, "does not depend on its input"),
    ("random", random_noise, "not deterministic"),
    ("global-branch", global_branch, "does it branch on the image's statistics?"),
    ("shifted-3px", shifted, "shifted against its input by +3.0 px down and +3.0 px right"),
    (
        "valid-shifted-3px",
        shifted_valid,
        "shifted against its input by +3.0 px down and +3.0 px right",
    ),
    ("1024-channels", heavy, "MFLOP per input pixel"),
    ("non-finite", non_finite, "non-finite values"),
]


def _one_line(e: BaseException, *parts: str) -> str:
    msg = str(e)
    assert msg and "\n" not in msg, msg
    for p in parts:
        assert p in msg, (p, msg)
    return msg


@pytest.mark.parametrize(
    ("make", "expected"), [(m, x) for _, m, x in BAD], ids=[i for i, _, _ in BAD]
)
def test_the_probe_refuses(make: Callable[[Path], Path], expected: str, tmp_path: Path) -> None:
    path = make(tmp_path / "bad.onnx")
    t0 = time.perf_counter()
    with pytest.raises(ProbeError) as e:
        probe(path)
    assert time.perf_counter() - t0 < 20
    _one_line(e.value, str(path), expected)
    with pytest.raises(ProbeError) as e:  # the bytes of a package's weights: named by the caller
        probe(path.read_bytes(), name="weights.onnx in pkg.zip")
    assert str(e.value).startswith("weights.onnx in pkg.zip: ")
    with pytest.raises(ProbeError) as e:
        Segmenter(path, normalization=NORM)
    _one_line(e.value, str(path), expected)


def test_the_control_net_is_accepted_and_tiles_exactly(tmp_path: Path) -> None:
    path = good(tmp_path / "good.onnx")
    p = probe(path)
    assert (p.geometry.alignment, p.geometry.shrink, p.out_channels) == (4, 0, 2)
    seg = Segmenter(path, normalization=NORM, tile=p.geometry.round_up(2 * p.geometry.halo + 40))
    image = read_image(SAMPLE)[:230, :301]
    assert seg.plan_for(image.shape).n_tiles > 4
    plan = tiling.whole_image_plan(image.shape, seg.geometry)
    whole = seg.tile_run(plan, tiling.array_reader(image), seg.scaling_for(image)).run(
        seg.run_batch
    )
    assert np.abs(seg.predict(image) - whole).max() <= 1e-5


def test_the_global_branch_would_be_wrong_on_a_real_image(tmp_path: Path) -> None:
    """Why the branch must be refused: on the probe's noise it is the control net, on a real
    (normalised) image the other branch runs and every class flips."""
    import onnxruntime as ort

    a = ort.InferenceSession(str(good(tmp_path / "g.onnx")), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(
        str(global_branch(tmp_path / "b.onnx")), providers=["CPUExecutionProvider"]
    )
    noise = np.random.default_rng(0).random((1, 1, 64, 64), dtype=np.float32)
    real = ((read_image(SAMPLE)[:64, :64] / 255.0 - 0.5) / 0.25)[None, None].astype(np.float32)
    assert np.array_equal(a.run(None, {"x": noise})[0], b.run(None, {"x": noise})[0])
    ya, yb = a.run(None, {"x": real})[0], b.run(None, {"x": real})[0]
    assert float(real.mean()) < 0.4 and np.array_equal(ya, -yb)


def test_the_cost_is_estimated_before_running(tmp_path: Path) -> None:
    heavy_path = heavy(tmp_path / "heavy.onnx")
    assert heavy_path.stat().st_size < 2000
    fpp = flops_per_pixel(onnx.load(str(heavy_path)))
    assert fpp == pytest.approx(2 * (1024 * 9 + 2 * 1024 * 1024 * 9 + 2 * 1024), rel=1e-6)
    t0 = time.perf_counter()
    with pytest.raises(ProbeError, match=r"about 37\.8 MFLOP per input pixel .* above the 20"):
        probe(heavy_path)
    assert time.perf_counter() - t0 < 2  # refused before a single run
    small = good(tmp_path / "good.onnx")
    with pytest.raises(ProbeError, match="above the 0 MFLOP"):
        probe(small, max_flops_per_pixel=10.0)


def test_the_time_is_bounded(tmp_path: Path) -> None:
    net = Net()
    x = "x"
    for cin in (1, 32, 32):
        x = net.op("Relu", net.conv(x, cin, 32))
    path = net.save(tmp_path / "slowish.onnx", net.conv(x, 32, 2))
    t0 = time.perf_counter()
    with pytest.raises(ProbeError) as e:
        probe(path, max_seconds=0.01)
    assert time.perf_counter() - t0 < 3
    _one_line(e.value, str(path), "would take more than 0 s", "s per megapixel")
    assert probe(path).geometry.alignment == 1  # accepted with the default budget


def test_a_loop_of_convolutions_is_refused_before_running(tmp_path: Path) -> None:
    body_net = Net()
    body_net.k = 500
    y = body_net.conv("v_in", 1, 1)
    body = helper.make_graph(
        [
            *body_net.nodes,
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", [y], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
        body_net.weights,
    )
    net = Net()
    trips = net.op("Cast", net.op("ReduceMax", "x", keepdims=0), to=TensorProto.INT64)
    looped = net.op("Loop", trips, "", "x", body=body)
    path = net.save(tmp_path / "loop.onnx", net.conv(looped, 1, 2))
    with pytest.raises(ProbeError) as e:
        probe(path)
    _one_line(e.value, str(path), "Loop node", "cannot be bounded")


@pytest.mark.parametrize("command", ["info", "run"])
def test_cli_refuses_in_one_line_and_writes_nothing(command: str, tmp_path: Path) -> None:
    path = shifted(tmp_path / "shifted.onnx")
    out = tmp_path / "out"
    args = ["info", "-m", str(path)] if command == "info" else [
        "run", str(SAMPLE), "-m", str(path), "-o", str(out),
        "--normalization", "percentile:1,99.8,mean=0.5,std=0.25,clip",
    ]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and str(path) in lines[0], r.output
    assert "shifted against its input" in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_a_graph_onnxruntime_cannot_load_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelError) as e:
        probe(path)
    _one_line(e.value, str(path), "onnxruntime cannot load")


def test_our_own_package_without_its_config_is_identified_exactly(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package of ours with ``config.unet_edge`` removed (what another tool writes) and a
    graph without metadata: it crops, runs the valid network and pads zeros back. Probing finds
    the layout the config held (halo, blocks, step, alignment; probabilities): it runs exactly."""
    pytest.importorskip("bioimageio.spec", reason="needs the [bioimageio] extra")
    yaml = pytest.importorskip("yaml")
    import hashlib
    import zipfile

    from unet_edge.training.package import write_package

    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path / "cache"))
    pkg = write_package(tiny_onnx, tmp_path / "tiny.zip")
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(pkg).extractall(folder)
    weights = folder / "weights.onnx"
    graph = onnx.load(str(weights))
    del graph.metadata_props[:]  # nor does the graph describe itself
    onnx.save(graph, str(weights))
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    layout = rdf["config"].pop("unet_edge")["layout"]
    rdf["weights"]["onnx"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    p = probe(weights.read_bytes(), name="weights.onnx")
    g = p.geometry
    assert (g.halo, g.min_input, g.step, g.alignment) == (
        layout["halo"],
        layout["min_block"],
        layout["step"],
        layout["alignment"],
    )
    assert p.kind.value == "probabilities"
    image = read_image(SAMPLE)[:320, :300]
    seg = Segmenter(folder / "rdf.yaml", tile=304)
    assert seg.source.probe is not None and seg.plan_for(image.shape).n_tiles > 1
    assert np.abs(seg.predict(image) - Segmenter(tiny_onnx).predict(image)).max() <= 1e-5
