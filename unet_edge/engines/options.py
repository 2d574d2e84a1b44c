"""What a caller asks of an engine: the provider by name, and the options that matter.

Everything here is checked when it is made: a typo in a provider or option
name is a :class:`~unet_edge.errors.ConfigError` that suggests the closest
spelling, a number out of range one that says what was expected. Nothing
here opens a session (see :mod:`unet_edge.engines.select`).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from ..config import ComputePrecision, look_up
from ..errors import ConfigError

__all__ = ["ConvAlgoSearch", "Provider", "ProviderOptions", "check_int"]


class Provider(str, enum.Enum):
    """An execution provider, by the name users type (``--provider cuda``)."""

    AUTO = "auto"  # the best of tensorrt, cuda, openvino, cpu that really works here
    CPU = "cpu"
    CUDA = "cuda"
    TENSORRT = "tensorrt"
    OPENVINO = "openvino"  # OpenVINO on the CPU (not an onnxruntime provider)


class ConvAlgoSearch(str, enum.Enum):
    """cuDNN convolution algorithm search, as onnxruntime's CUDA provider names it."""

    EXHAUSTIVE = "exhaustive"  # benchmark every algorithm on the first run of each shape
    HEURISTIC = "heuristic"  # cuDNN's heuristic ranking, no benchmarking
    DEFAULT = "default"  # always IMPLICIT_PRECOMP_GEMM; least memory


def check_int(
    name: str, value: object, low: int, high: int | None = None, optional: bool = False
) -> None:
    """Refuse ``value`` unless it is an integer (not a bool) in ``low..high``.

    ``high`` ``None``: no upper bound; ``optional``: ``None`` is accepted too.

    Raises:
        ConfigError: naming ``name``, what was expected and what was given.
    """
    if value is None and optional:
        return
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and value >= low and (high is None or value <= high):  # type: ignore[operator]
        return
    wanted = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    raise ConfigError(f"{name} must be {wanted}{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True)
class ProviderOptions:
    """Options that matter for the providers unet-edge uses.

    Options of providers that are not used are ignored (``trt_*`` on CUDA).

    Attributes:
        threads: CPU intra-op threads (OpenVINO: ``INFERENCE_NUM_THREADS``);
            ``None`` leaves the runtime's default (one per physical core).
        precision: arithmetic for the graph's float parts: ``"fp32"``, or
            ``"bf16"`` (``openvino`` only, on CPUs with AVX512-BF16 or AMX:
            about 2x faster, a few pixels may change class). Not the graph's
            own precision (an int8 file stays int8).
        device_id: CUDA device index for CUDA and TensorRT.
        cudnn_conv_algo_search: ``"EXHAUSTIVE"`` (fastest kernels, a slow first
            batch per tile shape), ``"HEURISTIC"`` or ``"DEFAULT"``
            (least memory). Case-insensitive; stored upper-case.
        gpu_mem_limit: cap in bytes on the CUDA provider's memory arena;
            ``None`` for no cap.
        trt_fp16: let TensorRT pick fp16 kernels (faster on tensor cores,
            results differ slightly from fp32).
        trt_cache_dir: folder for TensorRT engine and timing caches, so that
            engines are built once per tile shape and reused by later runs;
            created if missing. ``None`` disables both caches.
        trt_builder_optimization_level: TensorRT builder effort, 0..5
            (onnxruntime's default 3); higher builds slower, may run faster.
        trt_max_workspace_size: TensorRT builder workspace in bytes; ``None``
            leaves onnxruntime's default (the device's memory).
        preload_dlls: call ``onnxruntime.preload_dlls()`` once before the first
            CUDA or TensorRT session, so that CUDA and cuDNN installed as
            ``nvidia-*`` pip packages are found without setting library paths.
    """

    threads: int | None = None
    precision: str = "fp32"
    device_id: int = 0
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    gpu_mem_limit: int | None = None
    trt_fp16: bool = False
    trt_cache_dir: str | None = None
    trt_builder_optimization_level: int = 3
    trt_max_workspace_size: int | None = None
    preload_dlls: bool = True

    def __post_init__(self) -> None:
        check_int("threads", self.threads, low=1, optional=True)
        check_int("device_id", self.device_id, low=0)
        check_int("gpu_mem_limit", self.gpu_mem_limit, low=1, optional=True)
        check_int("trt_builder_optimization_level", self.trt_builder_optimization_level, 0, 5)
        check_int("trt_max_workspace_size", self.trt_max_workspace_size, low=1, optional=True)
        search = look_up(ConvAlgoSearch, self.cudnn_conv_algo_search, "cudnn_conv_algo_search")
        object.__setattr__(self, "cudnn_conv_algo_search", search.value.upper())
        object.__setattr__(
            self, "precision", look_up(ComputePrecision, self.precision, "precision").value
        )
        for name in ("trt_fp16", "preload_dlls"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.trt_cache_dir is not None:
            if not isinstance(self.trt_cache_dir, (str, os.PathLike)) or not str(
                self.trt_cache_dir
            ):
                raise ConfigError(
                    f"trt_cache_dir must be a folder path or None, got {self.trt_cache_dir!r}"
                )
            object.__setattr__(self, "trt_cache_dir", os.fspath(self.trt_cache_dir))
