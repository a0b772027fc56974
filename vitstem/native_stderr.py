"""Keep native libraries' log lines (TensorFlow's absl/oneDNN/CUDA start-up, Grappler's "Skipping
constant folding ...") off the terminal, so vitstem's own output is the only output.

TensorFlow 2.16+ logs through absl's C++ logging, which writes to file descriptor 2 before
TF_CPP_MIN_LOG_LEVEL is read ("All log messages before absl::InitializeLog() is called are written
to STDERR"). So the commands that may import TensorFlow run with fd 2 pointed at a temp file, while
Python's `sys.stderr` (vitstem's errors, progress, warnings, tracebacks) keeps writing to the real
terminal. `--verbose` turns this off. Nothing is redirected when stderr is not the process's own
fd 2 (e.g. under pytest's capture).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True):
    """Inside: native writes to fd 2 go to a temp file; Python's sys.stderr still reaches the terminal."""
    if not enabled:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # read at TensorFlow's import: errors only
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if not _stderr_is_fd2():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding or "utf-8",
                          errors="backslashreplace")
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)


def add_verbose_flag(parser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="let native libraries (TensorFlow, ONNX Runtime) print their own log lines")
