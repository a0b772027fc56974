"""Input checks for image tensors: the shared `vitstem.spec.inputs.check_images`, applied to a tensor."""

from __future__ import annotations

import torch

from ...errors import InputError
from ...spec import Spec
from ...spec.inputs import check_images, image_hw


def check_image_tensor(spec: Spec, images) -> tuple[int, int]:
    """(H, W) of a batch tensor; InputError (rank, dtype, channels, size, finiteness) as every engine raises.

    While torch.compile or torch.export traces, only the shape is read: the checks need values,
    and the traced graph's own shape guards stand in for them.
    """
    if not isinstance(images, torch.Tensor):
        raise InputError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return image_hw(spec, images.shape)
    x = images.detach()
    try:
        array = x.cpu().numpy()  # zero-copy for CPU tensors
    except TypeError:  # bfloat16 and other dtypes NumPy lacks: their float32 values have the same faults
        array = x.cpu().float().numpy()
    return check_images(spec, array)[1]
