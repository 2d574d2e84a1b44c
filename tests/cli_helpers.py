"""What every command-line test checks of a failed command: one line, no traceback."""

from __future__ import annotations

from click.testing import Result


def one_line_error(result: Result) -> str:
    """The one ``Error: ...`` line a failed command printed (asserted non-zero and alone)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error:")
    return lines[0]
