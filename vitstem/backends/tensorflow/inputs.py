"""Input checks for the Keras layer: the shared `check_images` in eager mode, its static part in graphs."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ...errors import InputError
from ...spec import Spec
from ...spec.inputs import check_images, image_hw


def check_graph_images(spec: Spec, images: tf.Tensor) -> tf.Tensor:
    """Check what a traced batch's static shape and dtype show; return the batch gated by run-time
    asserts on its sizes (so a bad size fails with our message, before any reshape sees it).

    The static checks run the shared `check_images` on a zero batch of the same static shape
    (unknown dims stood in by the spec's, batch 1), so the rules and messages are the eager ones.
    """
    shape = images.shape
    if shape.rank != 4:
        raise InputError(f"images have shape {shape}; expected rank 4, "
                         f"{spec.input_shape('B')} ({spec.input.layout})")
    stand_in = list(spec.input_shape(1))
    known = tuple(s if s is not None else stand_in[i] for i, s in enumerate(shape))
    try:
        check_images(spec, np.broadcast_to(np.zeros((), images.dtype.as_numpy_dtype), known))
    except InputError as exc:  # name the traced shape, not the stand-in's
        raise InputError(str(exc).replace(f"shape {known}", f"shape {tuple(shape)}", 1)) from None
    h, w = image_hw(spec, tf.shape(images))
    # A stateful assert runs under tf.function, but in no fixed order with the ops after it: gate the
    # batch on it, or the patchify Reshape may fail first with TF's own message.
    if spec.dynamic_image_size and spec.input.remainder == "drop":
        ph, pw = spec.patch_size
        check = tf.debugging.assert_greater_equal((h, w), (ph, pw),
                                                  message=f"image size must be at least the patch size {ph}x{pw}")
    elif spec.dynamic_image_size:
        ph, pw = spec.patch_size
        check = tf.debugging.assert_equal((h % ph, w % pw), (0, 0),
                                          message=f"image size must be a multiple of the patch size {ph}x{pw}")
    else:
        check = tf.debugging.assert_equal((h, w), spec.image_size, message=f"image size must equal the spec "
                                          f"image_size {spec.image_size[0]}x{spec.image_size[1]} "
                                          "(dynamic_image_size is false)")
    with tf.control_dependencies([check] if check is not None else []):
        return tf.identity(images)
