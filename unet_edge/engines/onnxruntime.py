"""ONNX Runtime as an engine: a session on the cpu, cuda or tensorrt provider, honestly.

onnxruntime-gpu lists ``CUDAExecutionProvider`` and ``TensorrtExecutionProvider``
as *available* whenever they are compiled in, even on a machine without a GPU
or without the CUDA, cuDNN and TensorRT libraries. Asked for them, it logs a
warning to stderr and quietly runs on the CPU. This adapter never lets that
pass: a provider that fails to register raises (``enable_fallback=0``), and
after creating a session it compares ``session.get_providers()`` with what
was asked; either way :class:`~unet_edge.engines.session.Unavailable` says
why, in words read from onnxruntime's captured messages
(:mod:`unet_edge.engines.diagnose`). An open session never falls back to
the CPU at run time either.

TensorRT gets one optimisation profile per tile shape the tiler will send
(min = opt = max) and, when asked, engine and timing caches on disk; CUDA
and TensorRT batches go through IO binding by default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from ..capture import first_line
from ..errors import ConfigError, InputError, ModelError
from .diagnose import call_captured, diagnose, is_provider_failure, not_installed_reason, preload
from .options import Provider, ProviderOptions
from .session import SessionInfo, Unavailable

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["ORT_NAME", "OrtSession", "compiled_in", "open_engine", "quiet_run_options"]

#: onnxruntime's names for the providers it runs.
ORT_NAME: dict[Provider, str] = {
    Provider.CPU: "CPUExecutionProvider",
    Provider.CUDA: "CUDAExecutionProvider",
    Provider.TENSORRT: "TensorrtExecutionProvider",
}
_ORT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
}
_Shapes = tuple[tuple[int, int, int, int], ...]


def compiled_in() -> set[Provider]:
    """The providers compiled into this onnxruntime build (whether they work or not)."""
    available = set(ort.get_available_providers())
    return {p for p, name in ORT_NAME.items() if name in available}


def quiet_run_options() -> ort.RunOptions:
    """Run options under which a failing run raises without ONNX Runtime logging to stderr."""
    ro = ort.RunOptions()
    ro.log_severity_level = 4
    return ro


class OrtSession:
    """An ``onnxruntime.InferenceSession`` behind the engines' session interface.

    Args:
        ort_session: the open session (kept as :attr:`ort_session`).
        on_gpu: it runs on CUDA or TensorRT, so batches use IO binding by default.
        device_id: the CUDA device its tensors are bound to.
    """

    def __init__(self, ort_session: ort.InferenceSession, on_gpu: bool, device_id: int) -> None:
        self.ort_session = ort_session
        self._on_gpu = on_gpu
        self._device_id = device_id

    def input_dtype(self, name: str) -> np.dtype[Any] | None:
        """The element type of the graph's input ``name`` (None: not one numpy knows)."""
        inputs = self.ort_session.get_inputs()
        for i in inputs:
            if i.name == name:
                return _ORT_TYPES.get(i.type)
        names = [i.name for i in inputs]
        raise InputError(f"the model has no input named {name!r}; its inputs are {names}")

    def run(
        self,
        input_name: str,
        output_name: str,
        batch: NDArray[Any],
        *,
        io_binding: bool | None = None,
    ) -> NDArray[Any]:
        """The output for a C-contiguous (N, C, H, W) ``batch``; see
        :func:`unet_edge.engines.session.run_batch` for ``io_binding``."""
        if not (self._on_gpu if io_binding is None else io_binding):
            return np.asarray(self.ort_session.run([output_name], {input_name: batch})[0])
        device, device_id = ("cuda", self._device_id) if self._on_gpu else ("cpu", 0)
        binding = self.ort_session.io_binding()
        x_dev = ort.OrtValue.ortvalue_from_numpy(batch, device, device_id)
        binding.bind_ortvalue_input(input_name, x_dev)
        binding.bind_output(output_name, device, device_id)
        self.ort_session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0])

    def run_quietly(self, input_name: str, output_name: str, batch: NDArray[Any]) -> NDArray[Any]:
        """One plain ``session.run`` of (N, C, H, W) ``batch`` that raises without logging."""
        feed = {input_name: batch}
        return np.asarray(self.ort_session.run([output_name], feed, quiet_run_options())[0])


def open_engine(
    source: str | bytes, provider: Provider, opts: ProviderOptions, shapes: _Shapes
) -> SessionInfo:
    """Open ``source`` (a path or ONNX bytes) on exactly ``provider`` (cpu, cuda or tensorrt).

    Raises:
        Unavailable: the provider is not compiled in, or does not come up here.
        ModelError: onnxruntime cannot load the model.
        ConfigError: the TensorRT cache folder cannot be created.
    """
    notes: list[str] = []
    if provider is not Provider.CPU:
        if provider not in compiled_in():
            raise Unavailable(not_installed_reason(provider))
        notes.extend(preload(provider, opts))
    providers = _provider_list(source, provider, opts, shapes, notes)
    session = _create(source, provider, opts, providers)
    if provider is not Provider.CPU:
        # No silent switch to the CPU at run time either.
        session.disable_fallback()
        if provider is Provider.TENSORRT and not shapes:
            notes.append(
                "tensorrt: no input shapes given, so engines are built at run time "
                "for each new tile shape"
            )
    on_gpu = provider in (Provider.CUDA, Provider.TENSORRT)
    adapter = OrtSession(session, on_gpu, opts.device_id)
    return SessionInfo(adapter, provider, provider, tuple(notes), opts)


def _create(
    source: str | bytes,
    provider: Provider,
    opts: ProviderOptions,
    providers: list[tuple[str, dict[str, str]]],
) -> ort.InferenceSession:
    """The session on ``providers``, its messages captured; or why ``provider`` did not come up."""
    # enable_fallback=0: a provider that fails to register raises here
    # instead of onnxruntime printing a banner and retrying on the CPU.
    session, error, said = call_captured(
        lambda: ort.InferenceSession(
            source, sess_options=_session_options(opts), providers=providers, enable_fallback=0
        )
    )
    if error is not None:
        message = str(error)
        if provider is not Provider.CPU and is_provider_failure(message + said):
            raise Unavailable(diagnose(provider, said, message)) from error
        raise ModelError(
            f"onnxruntime could not load the model: {first_line(message)}; "
            "expected an ONNX file exported by `unet-edge export`"
        ) from error
    assert session is not None  # call_captured returns the result whenever there is no error
    if session.get_providers()[0] != ORT_NAME[provider]:
        raise Unavailable(diagnose(provider, said, ""))
    return session


def _session_options(opts: ProviderOptions) -> ort.SessionOptions:
    """Every optimisation, nodes run in order, ``opts.threads`` intra-op threads, errors only."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if opts.threads is not None:
        so.intra_op_num_threads = opts.threads
    # Errors only: "some nodes were not assigned to the preferred provider"
    # is expected (shape ops run on the CPU) and not worth a warning.
    so.log_severity_level = 3
    return so


def _provider_list(
    source: str | bytes,
    provider: Provider,
    opts: ProviderOptions,
    shapes: _Shapes,
    notes: list[str],
) -> list[tuple[str, dict[str, str]]]:
    """onnxruntime's ``providers=`` argument: the provider, then its fallbacks for nodes.

    Notes on the TensorRT caches are appended to ``notes``.
    """
    cpu: tuple[str, dict[str, str]] = (ORT_NAME[Provider.CPU], {})
    if provider is Provider.CPU:
        return [cpu]
    cuda = (ORT_NAME[Provider.CUDA], _cuda_options(opts))
    if provider is Provider.CUDA:
        return [cuda, cpu]
    # CUDA behind TensorRT takes the nodes TensorRT cannot (documented practice).
    return [
        (ORT_NAME[Provider.TENSORRT], _tensorrt_options(source, opts, shapes, notes)),
        cuda,
        cpu,
    ]


def _cuda_options(opts: ProviderOptions) -> dict[str, str]:
    """The CUDA provider's options, as the strings onnxruntime reads."""
    o = {
        "device_id": str(opts.device_id),
        "cudnn_conv_algo_search": opts.cudnn_conv_algo_search,
        # Same stream for copies and compute: onnxruntime's default, and the
        # other setting can race (onnxruntime issue #4829).
        "do_copy_in_default_stream": "1",
    }
    if opts.gpu_mem_limit is not None:
        o["gpu_mem_limit"] = str(opts.gpu_mem_limit)
    return o


def _tensorrt_options(
    source: str | bytes, opts: ProviderOptions, shapes: _Shapes, notes: list[str]
) -> dict[str, str]:
    """The TensorRT provider's options: device, fp16, builder effort, caches (folder
    created, a note appended to ``notes``) and one profile per shape of ``shapes``."""
    o = {
        "device_id": str(opts.device_id),
        "trt_fp16_enable": str(opts.trt_fp16),
        "trt_builder_optimization_level": str(opts.trt_builder_optimization_level),
    }
    if opts.trt_max_workspace_size is not None:
        o["trt_max_workspace_size"] = str(opts.trt_max_workspace_size)
    if opts.trt_cache_dir is not None:
        try:
            os.makedirs(opts.trt_cache_dir, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"cannot create the TensorRT cache folder {opts.trt_cache_dir!r}: {e.strerror}; "
                "choose a writable folder or trt_cache_dir=None"
            ) from e
        o.update(
            trt_engine_cache_enable="True",
            trt_engine_cache_path=opts.trt_cache_dir,
            trt_timing_cache_enable="True",
            trt_timing_cache_path=opts.trt_cache_dir,
        )
        notes.append(f"tensorrt: engine and timing caches in {opts.trt_cache_dir}")
    if shapes:
        o.update(_profile_options(_input_name(source), shapes))
    return o


def _profile_options(name: str, shapes: Sequence[tuple[int, int, int, int]]) -> dict[str, str]:
    """One TensorRT optimisation profile per shape, min = opt = max.

    onnxruntime reads ``name:AxBxCxD`` entries separated by commas; the same
    input named again starts another profile.
    """
    if any(c in name for c in ",:"):
        raise ModelError(
            f"the model's input is named {name!r}; TensorRT profiles cannot name an input "
            "containing ',' or ':'; re-export the model with a plain input name"
        )
    spec = ",".join(f"{name}:{'x'.join(str(d) for d in s)}" for s in shapes)
    return {"trt_profile_min_shapes": spec, "trt_profile_opt_shapes": spec,
            "trt_profile_max_shapes": spec}  # fmt: skip


def _input_name(source: str | bytes) -> str:
    """The name of the model's single graph input (initializers excluded)."""
    # onnx is imported here: only TensorRT profiles need it, and it is not cheap to import.
    import onnx

    try:
        if isinstance(source, bytes):
            m = onnx.load_from_string(source)
        else:
            m = onnx.load(source, load_external_data=False)
    except Exception as e:
        raise ModelError(f"cannot read the ONNX model to name its input: {e}") from e
    inits = {t.name for t in m.graph.initializer}
    names = [i.name for i in m.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ModelError(
            f"expected a model with exactly one input, found {len(names)}: {names}; "
            "export it with `unet-edge export`"
        )
    return names[0]
