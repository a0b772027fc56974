"""Shared pytest set-up.

torchvision segfaults when it is imported after tensorflow in one process (torch 2.14.1 +
torchvision 0.29.1 + tensorflow 2.21 on x86_64); the other order works. Tests use both, so
torch and torchvision are imported here first, before any test module can import tensorflow.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow turns its oneDNN kernels on by default only on some x86 CPUs (Intel); without them its CPU
# Conv2D has no NCHW kernel, which keras-hub's channels_first layers need. Force them on so the suite
# runs the same kernels on every x86 host (measured: an AMD EPYC host failed the channels_first cases).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# The exact profile is many small elementwise ops; spinning OpenMP workers make it 50x slower on a
# busy 2-core machine (measured: ViT-B/32 exact 57-94 s spinning, 1.3 s passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402,F401
import torchvision  # noqa: E402,F401
