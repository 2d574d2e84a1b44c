"""What this CPU is: its name and the instruction sets that decide which kernels run.

The same int8 file gives different masks on different x86 CPUs with ONNX
Runtime: without a VNNI instruction (AVX512-VNNI, AVX-VNNI or AMX-INT8)
its u8 x s8 kernels add pairs of products into 16-bit integers
(``vpmaddubsw``), which saturate when both the activation and the weight are
large. With 8-bit weights the shipped model's int8 file changed the class of
3.0% of the pixels of ISBI slices 20-24 on an AVX2-only AMD EPYC, and of 0.36%
on a Xeon with VNNI (and with OpenVINO on either). With weights in 7 bits
(``reduce_range``: at most 2 x 255 x 64 = 32640 per pair) no sum can
saturate. :func:`int8_saturates` tells which kind of CPU this is.

Read from ``/proc/cpuinfo`` on Linux; elsewhere the flags are unknown
(empty) and :func:`int8_saturates` answers ``None``. Standard library only.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["describe", "flags", "int8_saturates", "name", "parse_cpuinfo"]

#: Flags (as /proc/cpuinfo spells them) that let an int8 dot product accumulate in 32 bits.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
#: The flags worth naming in a benchmark's "which CPU" line, in this order.
NAMED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
               "amx_int8")  # fmt: skip
_CPUINFO = Path("/proc/cpuinfo")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The model name and the flags of the first processor in a ``/proc/cpuinfo`` text."""
    model, found = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not found:
            found = frozenset(value.split())
    return model, found


@functools.lru_cache(maxsize=1)
def _read() -> tuple[str, frozenset[str]]:
    try:
        text = _CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    model, found = parse_cpuinfo(text)
    return model or platform.processor() or platform.machine(), found


def name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what :mod:`platform` says)."""
    return _read()[0]


def flags() -> frozenset[str]:
    """The CPU's instruction-set flags as Linux names them (empty where unknown)."""
    return _read()[1]


def is_x86() -> bool:
    """Whether this is an x86-64 (or x86) CPU."""
    return platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}


def int8_saturates(found: frozenset[str] | None = None, x86: bool | None = None) -> bool | None:
    """Whether ONNX Runtime's u8 x s8 int8 kernels saturate on this CPU.

    True on an x86 CPU without VNNI (they add product pairs in 16 bits), False
    on one with VNNI or on another architecture, None where the flags are
    unknown. ``found``/``x86`` describe another CPU (tests, reports).
    """
    found = flags() if found is None else found
    x86 = is_x86() if x86 is None else x86
    if not x86:
        return False
    if not found:
        return None
    return not (found & VNNI_FLAGS)


def describe(found: frozenset[str] | None = None) -> str:
    """The named flags this CPU has, e.g. ``"avx2 fma avx512f avx512_vnni"`` (or "unknown")."""
    found = flags() if found is None else found
    have = [f for f in NAMED_FLAGS if f in found]
    return (
        " ".join(have) if have else ("unknown" if not found else "none of " + "/".join(NAMED_FLAGS))
    )
