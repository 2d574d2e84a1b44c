"""The CPU's name and flags, and whether onnxruntime's int8 kernels saturate on it."""

from __future__ import annotations

import pytest

from unet_edge import cpu

#: Abridged /proc/cpuinfo of the two kinds of build machine seen: an AVX2-only AMD EPYC
#: (where onnxruntime's int8 changed 3% of the classes) and a Xeon with AVX-512 VNNI and AMX.
ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
processor\t: 1
model name\t: ignored: only the first processor counts
flags\t\t: avx512_vnni
"""
XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 fma avx avx2 avx512f avx512bw avx512_bf16 avx512_vnni amx_bf16 amx_int8
"""


def test_parse_cpuinfo_reads_the_first_processor() -> None:
    name, flags = cpu.parse_cpuinfo(ZEN3)
    assert name == "AMD EPYC 7B13"
    assert {"avx2", "fma"} <= flags and "avx512_vnni" not in flags
    assert cpu.parse_cpuinfo("") == ("", frozenset())


@pytest.mark.parametrize(
    ("text", "x86", "saturates"),
    [
        (ZEN3, True, True),  # AVX2 without VNNI: vpmaddubsw adds pairs in 16 bits
        (XEON, True, False),  # VNNI accumulates in 32 bits
        ("flags\t: avx2 avx_vnni\n", True, False),  # AVX-VNNI (client CPUs) is enough
        ("flags\t: avx2 amx_int8\n", True, False),
        (ZEN3, False, False),  # another architecture: not these kernels
        ("model name\t: no flags line\n", True, None),  # unknown
    ],
)
def test_int8_saturates(text: str, x86: bool, saturates: bool | None) -> None:
    assert cpu.int8_saturates(cpu.parse_cpuinfo(text)[1], x86=x86) is saturates


def test_describe_names_the_flags_that_choose_kernels() -> None:
    assert cpu.describe(cpu.parse_cpuinfo(ZEN3)[1]) == "avx2 fma"
    assert cpu.describe(cpu.parse_cpuinfo(XEON)[1]) == (
        "avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8"
    )
    assert cpu.describe(frozenset()) == "unknown"
    assert cpu.describe(frozenset({"sse2"})).startswith("none of avx2/")


def test_this_machine() -> None:
    assert cpu.name()
    assert cpu.flags() is cpu.flags()  # /proc/cpuinfo is read once, then cached
    assert cpu.int8_saturates() in (True, False, None)
