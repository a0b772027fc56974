"""The peer's configs beside a checkpoint (config.json, preprocessor_config.json, timm's pretrained_cfg),
read through one typed accessor: a badly typed field is one SpecError line naming the file and the
field path (`config.json: vision_config.image_size: expected ...`), never a traceback or a silently
wrong spec. A null field counts as absent (the peers' None default). Files are capped at
MAX_CONFIG_BYTES before reading.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

from ..errors import SpecError

MAX_CONFIG_BYTES = 16 << 20  # config.json / preprocessor_config.json: kilobytes in practice
_MISSING = object()


def _shown(value) -> str:
    """A field's value for a message: short, and named by its JSON type."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             tuple: "a list", dict: "an object"}
    text = repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and len(text) > 24:
        text = f"{text[:12]}... ({len(text.lstrip('-'))} digits)"
    elif len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kinds.get(type(value), type(value).__name__)})"


class ConfigFields:
    """Typed fields of one config (a JSON object, or an object with attributes such as a transformers
    image processor); `source` names it in messages, `prefix` is the path of a nested section."""

    def __init__(self, values, source: str, prefix: str = ""):
        self.values, self.source, self.prefix = values, source, prefix

    @classmethod
    def read(cls, path: Path | None, required: bool = False, name: str | None = None) -> "ConfigFields":
        """The JSON object in `path`; empty when it is absent and not `required`; SpecError otherwise."""
        from ..outputs import shown
        from ..spec.npy_file import open_regular, read_capped
        from ..spec.strict_text import loads_json

        if path is None or (not required and not path.exists()):
            return cls({}, name or "config")
        try:
            with open_regular(path) as f:  # a device or FIFO is refused unread (/dev/zero never ends)
                text = read_capped(f, MAX_CONFIG_BYTES)
            if len(text) > MAX_CONFIG_BYTES:
                raise SpecError(f"{shown(path)}: over the {MAX_CONFIG_BYTES}-byte limit for a config file")
            data = loads_json(text.decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            raise SpecError(f"cannot read {shown(path)}: {reason}") from None
        if not isinstance(data, dict):
            raise SpecError(f"{shown(path)}: expected a JSON object, got {type(data).__name__}")
        return cls(data, name or shown(path))

    def __bool__(self) -> bool:
        return bool(self.values)

    def raw(self, key: str, default=None):
        """The field as stored (None when absent or null)."""
        if isinstance(self.values, dict):
            value = self.values.get(key, _MISSING)
        else:
            value = getattr(self.values, key, _MISSING)
        return default if value is _MISSING or value is None else value

    def error(self, key: str, reason: str) -> SpecError:
        return SpecError(f"{self.source}: {self.prefix}{key}: {reason}")

    def _bad(self, key: str, expected: str, value) -> SpecError:
        return self.error(key, f"expected {expected}, got {_shown(value)}")

    def section(self, key: str) -> "ConfigFields | None":
        """A nested object (e.g. vision_config), or None when absent."""
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(self.values, dict) and not isinstance(value, dict):
            raise self._bad(key, "an object", value)
        return ConfigFields(value, self.source, f"{self.prefix}{key}.")

    def integer(self, key: str, default=None, minimum: int = 1, maximum: int = 2**31 - 1):
        value = self.raw(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self._bad(key, f"an integer from {minimum} to {maximum}", value)
        return int(value)

    def number(self, key: str, default=None, *, positive: bool = False, low: float = -math.inf,
               high: float = math.inf) -> float | None:
        value = self.raw(key, _MISSING)
        if value is _MISSING:
            return default
        return self._number(key, value, positive, low, high)

    def _number(self, key, value, positive=False, low=-math.inf, high=math.inf) -> float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        number = float(value) if ok else math.nan
        if not math.isfinite(number) or (positive and number <= 0) or not low <= number <= high:
            limits = "a positive finite number" if positive else "a finite number"
            if low > -math.inf or high < math.inf:
                limits += f" in [{low:g}, {high:g}]"
            raise self._bad(key, limits, value)
        return number

    def numbers(self, key: str, default, count: int | None = None, positive: bool = False) -> list[float] | None:
        """A number (repeated `count` times) or a list of `count` numbers."""
        value = self.raw(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, (list, tuple)):
            if count is not None and len(value) != count:
                raise self.error(key, f"{len(value)} values, expected {count} (one per input channel)")
            return [self._number(f"{key}[{i}]", v, positive) for i, v in enumerate(value)]
        return [self._number(key, value, positive)] * (count or 1)

    def integers(self, key: str, count: int) -> list[int] | None:
        """A list of exactly `count` positive integers, or None when absent."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != count or any(
                isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2**31 - 1 for v in value):
            raise self._bad(key, f"a list of {count} positive integers", value)
        return [int(v) for v in value]

    def size(self, key: str) -> tuple[int, int] | None:
        """An (H, W) size given as one positive integer or a list of one or two; None when absent."""
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, (list, tuple)) and len(value) in (1, 2):
            sides = self.integers(key, len(value))
            return (sides[0], sides[-1])
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
            raise self._bad(key, "a positive integer or a list of one or two", value)
        return int(value), int(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def text(self, key: str, default=None, choices: tuple[str, ...] | None = None):
        value = self.raw(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or (choices is not None and value not in choices):
            raise self._bad(key, "one of " + ", ".join(choices) if choices else "a string", value)
        return value

    def agrees(self, key: str, actual, what: str, read=None) -> None:
        """SpecError when the field is present and differs from what the checkpoint's tensors say."""
        stated = (read or self.integer)(key)
        if stated is not None and stated != actual:
            raise self.error(key, f"{_plain(stated)}, but {what} is {_plain(actual)}: is this config from another "
                                  "model? (the checkpoint's shapes decide; fix or remove the field)")


def _plain(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)
