"""The `vitstem` command line. User errors print one line to stderr and exit 2; bugs keep their traceback.

Each area registers its own subcommands through a `register(subparsers)` function in its
`cli` module (listed in COMMAND_MODULES); those modules import their heavy dependencies only
inside the command functions, so `vitstem --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .errors import VitstemError

COMMAND_MODULES = (
    "vitstem.spec.cli",
    "vitstem.export.cli",
    "vitstem.runtime.cli",
    "vitstem.interop.cli",
    "vitstem.deploy.cli",
    "vitstem.conformance.cli",
    "vitstem.benchmark_cli",
)


# top-level module -> the extra that installs it (pyproject.toml [project.optional-dependencies])
MISSING_EXTRAS = {"onnx": "onnx", "onnxruntime": "edge", "torch": "torch", "tensorflow": "tf", "keras": "tf",
                  "timm": "interop", "transformers": "interop", "keras_hub": "interop", "tf2onnx": "interop",
                  "matplotlib": "report", "PIL": "edge", "onnxscript": "all", "openvino": "edge-engines",
                  "ai_edge_litert": "edge-engines",
                  "safetensors": "", "yaml": ""}  # "": a core dependency (a broken install: reinstall vitstem)
CORE_PACKAGES = {"yaml": "pyyaml"}  # module -> the package that installs it, where they differ


def checksum(array: np.ndarray) -> str:
    """A short content hash of an array's bytes, for printing."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitstem", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vitstem {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before any command imports torch: spinning OpenMP workers slow the exact profile's many small
    # ops by up to 50x on a busy machine; quiet TensorFlow's start-up log.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    from .native_stderr import native_stderr_silenced

    try:
        # numpy's overflow warnings would add lines before the one error line: every result is checked for
        # finiteness explicitly (InputError / ExportError), so the warnings say nothing the error does not
        with native_stderr_silenced(getattr(args, "verbose", None) is False), np.errstate(all="ignore"):
            return int(args.run(args) or 0)
    except VitstemError as exc:
        error(exc)
        return 2
    except ModuleNotFoundError as exc:  # an optional extra this command needs is not installed
        extra = MISSING_EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        module = exc.name.split(".")[0]
        error(f"this command needs {module}, which is not installed: "
              + (f"pip install 'vitstem[{extra}]'" if extra else f"a core dependency of vitstem: pip install {CORE_PACKAGES.get(module, module)} "
                 "or reinstall vitstem") + " (see Install in the README)")
        return 2
    except OSError as exc:  # a path the user gave: missing, a directory, too long, read-only, disk full...
        if exc.filename is None:  # not about a file: a bug, keep the traceback
            raise
        error(f"{exc.strerror or exc}: {exc.filename}")
        return 2


def error(message) -> None:
    """The one `vitstem: error: ...` line; control characters (a newline in a path) are escaped to keep it one."""
    text = str(message)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    print(f"vitstem: error: {text}", file=sys.stderr)


def write_json(data, path: str | None) -> None:
    """JSON to stdout, or atomically to `path`."""
    from .files import atomic_write_bytes

    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path in (None, "-"):
        sys.stdout.write(text)
    else:
        atomic_write_bytes(Path(path), text.encode())


if __name__ == "__main__":
    sys.exit(main())
