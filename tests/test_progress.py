"""The progress helper: a bar on a terminal, plain lines in a log, nothing when asked."""

from __future__ import annotations

import io

from nasfer.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_off_a_terminal():
    log = io.StringIO()
    assert list(progress_bar(range(100), desc="video", unit="frames", file=log)) == list(range(100))
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10
    assert lines[0].startswith("video: 10/100 frames") and lines[-1].startswith("video: 100/100 frames")


def test_unknown_total_logs_every_n_and_at_the_end():
    log = io.StringIO()
    with progress_bar(desc="x", file=log, every=40) as bar:
        for _ in range(90):
            bar.update(1)
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == ["x: 40 it", "x: 80 it", "x: 90 it"]


def test_a_bar_on_a_terminal_and_nothing_when_hidden():
    term = Terminal()
    for _ in progress_bar(range(5), desc="t", file=term):
        pass
    assert "\r" in term.getvalue()  # tqdm's redraws
    quiet = io.StringIO()
    with progress_bar(total=5, file=quiet, show=False) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""
    forced = io.StringIO()
    for _ in progress_bar(range(3), file=forced, enabled=False, every=1):
        pass
    assert forced.getvalue().count("\n") == 3
