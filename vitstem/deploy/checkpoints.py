"""Peer models from files, for `vitstem deploy` (no Python needed): a timm architecture name plus a
safetensors state dict, or a local transformers model directory (config.json + model.safetensors).
Nothing is downloaded and nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightsError


def _state_dict(path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..spec.file_kinds import non_regular_kind

    kind = non_regular_kind(path)  # a FIFO would block, /dev/zero never ends
    if kind is not None:
        raise WeightsError(f"{path}: {kind}, not a safetensors file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({str(exc).strip().splitlines()[0]})") from None


def timm_model(arch: str, weights, *, dynamic_img_size: bool = False):
    """timm.create_model(arch) (no pretrained download), its head sized from `head.weight`, loaded strictly."""
    import timm

    state = _state_dict(weights)
    head = state.get("head.weight")
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=0 if head is None else int(head.shape[0]),
                                  dynamic_img_size=dynamic_img_size)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise WeightsError(f"timm cannot build {arch!r}: {exc}") from None
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # torch: a tensor whose shape is not the architecture's
        lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise WeightsError(f"{weights} does not fit timm's {arch}: {lines[0] if lines else str(exc).splitlines()[0]}"
                           f"{f' (and {len(lines) - 1} more)' if len(lines) > 1 else ''}") from None
    wrong = [f"missing {k}" for k in result.missing_keys] + [f"unexpected {k}" for k in result.unexpected_keys]
    if wrong:
        more = f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""
        raise WeightsError(f"{weights} does not fit timm's {arch}: {', '.join(wrong[:5])}{more}")
    return model.eval()


def hf_model(directory):
    """The transformers model in `directory` (config.json + model.safetensors), of the class its config's
    `architectures` names (else AutoModel), with its preprocessor_config.json (a dict) or None."""
    import transformers

    directory = Path(directory)
    for name in ("config.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise WeightsError(f"{directory}: no {name} (a transformers model directory has config.json and "
                               "model.safetensors)")
    try:
        config = transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"{directory / 'config.json'}: transformers cannot read it ({exc})") from None
    names = [a for a in (getattr(config, "architectures", None) or []) if hasattr(transformers, a)]
    cls = getattr(transformers, names[0]) if names else transformers.AutoModel
    try:
        model = cls.from_pretrained(str(directory), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{directory}: transformers cannot load {cls.__name__} from it "
                           f"({str(exc).strip().splitlines()[0]})") from None
    processor = directory / "preprocessor_config.json"
    from ..interop.config_fields import ConfigFields  # bounded, typed, errors naming the file and field

    return model.eval(), (ConfigFields.read(processor) if processor.is_file() else None)
