"""Export options: parsed and validated once, so the graph builder only ever sees a consistent set.

Every refusal names the option at fault and what would work instead.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..errors import ExportError, InputError
from ..spec import Spec
from ..spec.exported import MIN_OPSET
from ..spec.vocabulary import IO_DTYPES, Precision, Profile

DEFAULT_OPSET = 18  # LayerNormalization (17) and antialiased Resize (18); ONNX Runtime >= 1.14 loads it
DYNAMIC_FIX = ("add --dynamic-image-size to `vitstem export` (or `dynamic_image_size: true` to the spec file; "
               "Python: spec.replace(dynamic_image_size=True))")


@dataclass(frozen=True)
class ExportOptions:
    opset: int
    precision: str
    profile: str
    batch: int | None  # None: dynamic
    sizes: tuple[tuple[int, int], ...] | None  # None: dynamic; one entry: fixed
    dynamic_size: bool
    preprocess_in_graph: bool
    io_dtype: str
    ort_format: bool

    @property
    def compute_dtype(self) -> str:
        if self.profile == Profile.EXACT:
            return Profile.EXACT.compute_dtype
        return Precision(self.precision).compute_dtype

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        return self.sizes[0] if self.sizes is not None and len(self.sizes) == 1 else None

    def to_json(self) -> str:
        """What the runtime and `vitstem check` read back from the model metadata."""
        data = asdict(self)
        data["sizes"] = None if self.sizes is None else [list(s) for s in self.sizes]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def newest_opset() -> int:
    import onnx

    return onnx.defs.onnx_opset_version()


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'224,384' or '224x224,256x320' (H x W) -> [(224, 224), (384, 384)]."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        hw = item.lower().split("x")
        try:
            h, w = (int(hw[0]), int(hw[0])) if len(hw) == 1 else (int(hw[0]), int(hw[1]))
        except ValueError:
            raise ExportError(f"image size {item!r} is not N or HxW (e.g. 224 or 224x320)") from None
        if len(hw) > 2:
            raise ExportError(f"image size {item!r} is not N or HxW (e.g. 224 or 224x320)")
        sizes.append((h, w))
    return sizes


def _sizes(spec: Spec, image_size) -> tuple[tuple[tuple[int, int], ...] | None, bool]:
    if isinstance(image_size, str) and image_size in ("fixed", "dynamic"):
        if image_size == "fixed":
            return (tuple(spec.image_size),), False
        if not spec.dynamic_image_size:
            raise ExportError(f"image_size 'dynamic' needs a spec with dynamic_image_size: true (this one runs only "
                              f"at {spec.image_size[0]}x{spec.image_size[1]}); {DYNAMIC_FIX}")
        return None, True
    if isinstance(image_size, str):
        image_size = parse_sizes(image_size)
    try:
        sizes = [(int(s), int(s)) if isinstance(s, int) else (int(s[0]), int(s[1])) for s in image_size]
    except (TypeError, ValueError, IndexError):
        raise ExportError(f"image_size must be 'fixed', 'dynamic' or a list of (H, W), got {image_size!r}") from None
    if not sizes:
        raise ExportError("image_size is an empty list; give at least one (H, W), or 'fixed' / 'dynamic'")
    for hw in sizes:
        try:
            spec.patch_grid(hw)  # the spec's rule (input.remainder) for sizes
        except InputError as exc:
            raise ExportError(str(exc)) from None
    sizes = list(dict.fromkeys(sizes))  # keep order, drop repeats
    if sizes != [tuple(spec.image_size)] and not spec.dynamic_image_size:
        raise ExportError(f"image_size {image_size!r} asks for sizes other than the spec's "
                          f"{spec.image_size[0]}x{spec.image_size[1]}, but the spec has dynamic_image_size: false; "
                          f"{DYNAMIC_FIX}, or export a spec whose image_size is the one size you need")
    return tuple(sizes), False


def check_sizes_agree(spec: Spec, options: dict, source) -> None:
    """ExportError when stored export options promise sizes the stored spec refuses (files written
    before export refused that)."""
    sizes = options.get("sizes")
    if not spec.dynamic_image_size and (options.get("dynamic_size") or (sizes and len(sizes) > 1)):
        raise ExportError(f"{source}: exported for {'any size' if options.get('dynamic_size') else 'several sizes'} "
                          "but its spec has dynamic_image_size: false, so the runtime accepts only "
                          f"{spec.image_size[0]}x{spec.image_size[1]}; re-export: {DYNAMIC_FIX}")


def resolve_options(spec: Spec, *, opset=None, precision="fp32", profile="fast", batch="dynamic",
                    image_size="fixed", preprocess_in_graph=False, io_dtype=None, ort_format=False) -> ExportOptions:
    """Validated ExportOptions; ExportError naming the option and the alternatives otherwise."""
    newest = newest_opset()
    opset = DEFAULT_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset must be an int from {MIN_OPSET} to {newest} (the newest the installed onnx "
                          f"knows), got {opset!r}")
    if precision not in Precision.choices():
        raise ExportError(f"precision must be one of {', '.join(Precision.choices())}, got {precision!r}")
    if profile not in Profile.choices():
        raise ExportError(f"profile must be one of {', '.join(Profile.choices())}, got {profile!r}")
    if profile == Profile.EXACT and precision != Precision.FP32:
        raise ExportError(f"profile 'exact' computes in float64; it cannot be combined with precision {precision!r} "
                          "(use profile 'fast')")
    io_dtype = io_dtype or "float32"
    if io_dtype not in IO_DTYPES:
        raise ExportError(f"io_dtype must be one of {', '.join(IO_DTYPES)}, got {io_dtype!r}")
    if io_dtype == "float16" and precision != Precision.FP16:
        raise ExportError(f"io_dtype 'float16' needs precision 'fp16', got precision {precision!r}")
    if batch == "dynamic" or batch is None:
        batch = None
    elif isinstance(batch, str) and batch.isdigit():
        batch = int(batch)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ExportError(f"batch must be 'dynamic' or a positive int, got {batch!r}")
    sizes, dynamic = _sizes(spec, image_size)
    if preprocess_in_graph and spec.input.preprocess is None:
        raise ExportError("preprocess_in_graph needs the spec's input.preprocess (scale, mean, std) to turn uint8 "
                          "pixels into model inputs; this spec has none")
    if dynamic:
        pe, rs = spec.position_embedding, spec.resample
        if pe.kind == "learned" and profile == Profile.EXACT:
            raise ExportError("image_size 'dynamic' resamples the learned position table with ONNX Resize, which "
                              "ONNX Runtime has no float64 kernel for, so profile 'exact' cannot hold; use a fixed "
                              "size or a list of sizes (tables resampled at export time), or profile 'fast'")
        if pe.kind == "learned" and getattr(rs, "phase_steps", None) is not None:
            raise ExportError(f"the spec's resample policy {rs.policy!r} rounds sample positions to 1/{rs.phase_steps} "
                              "(phase_steps, as TensorFlow's bicubic kernel does), which ONNX Resize cannot express; "
                              "use a fixed size or a list of sizes (tables resampled at export time with the exact "
                              "policy), or a custom policy with phase_steps: null")
        if pe.kind == "learned" and rs.antialias and opset < 18:
            raise ExportError(f"the spec's resample policy {rs.policy!r} is antialiased, which ONNX Resize expresses "
                              f"only from opset 18 (got opset {opset}); use opset >= 18, a fixed size, a list of sizes, "
                              "or a policy without antialias (e.g. hf_pytorch)")
    return ExportOptions(opset=opset, precision=precision, profile=profile, batch=batch, sizes=sizes,
                         dynamic_size=dynamic, preprocess_in_graph=bool(preprocess_in_graph), io_dtype=io_dtype,
                         ort_format=bool(ort_format))
