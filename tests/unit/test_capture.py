"""unet_edge.capture: the one capture of what C libraries print, shared by io and engines."""

from __future__ import annotations

import os
import sys
import threading

from unet_edge.capture import captured, first_line


def _fd2_target() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_c_level_and_python_output_are_caught_and_fds_restored() -> None:
    before = _fd2_target()
    with captured() as out:
        os.write(2, b"\x1b[31m[E:onnxruntime] no such library\x1b[0m\n")
        print("from python", file=sys.stderr)
    assert "[E:onnxruntime] no such library" in out.text and "\x1b" not in out.text
    assert "from python" in out.text
    assert _fd2_target() == before


def test_fd2_only_leaves_python_streams_alone(capsys) -> None:  # type: ignore[no-untyped-def]
    with captured((2,), python=False) as out:
        os.write(2, b"libpng error: IDAT: CRC error\n")
    assert out.text == "libpng error: IDAT: CRC error"


def test_nested_captures_restore_in_order() -> None:
    before = _fd2_target()
    with captured() as outer:
        os.write(2, b"outer\n")
        with captured() as inner:
            os.write(2, b"inner\n")
        os.write(2, b"outer again\n")
    assert inner.text == "inner"
    assert outer.text.split() == ["outer", "outer", "again"]
    assert _fd2_target() == before


def test_captures_on_two_threads_never_interleave() -> None:
    """A decode on one thread and a session opening on another take turns: each gets its own
    text and fd 2 points where it pointed before (the bug two locks allowed)."""
    before = _fd2_target()
    texts: dict[int, list[str]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        for i in range(50):
            with captured((2,), python=False) as out:
                os.write(2, f"t{k}-{i}\n".encode())
            texts[k].append(out.text)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (0, 1):
        assert texts[k] == [f"t{k}-{i}" for i in range(50)]
    assert _fd2_target() == before


def test_first_line() -> None:
    assert first_line("\n  \x1b[1mfirst\x1b[0m  \nsecond") == "first"
    assert first_line("") == ""
    assert len(first_line("x" * 1000)) == 300
