"""A plain-text progress bar on stderr for long conformance matrices."""

from __future__ import annotations

import sys


class Progress:
    """A plain-text progress bar on stderr for long matrices (redrawn in place on a terminal)."""

    def __init__(self, total: int, enabled: bool = True, stream=None, width: int = 30):
        self.total, self.stream, self.width = total, stream or sys.stderr, width
        self.enabled = enabled and total > 1
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = -1

    def update(self, done: int, label: str = "") -> None:
        if not self.enabled:
            return
        filled = self.width * done // self.total
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {label}"
        if self.tty:
            self.stream.write("\r" + text[:110].ljust(110))
        elif 10 * done // self.total != self.last:  # a log: one line per tenth
            self.last = 10 * done // self.total
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.update(self.total, "done")
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()
