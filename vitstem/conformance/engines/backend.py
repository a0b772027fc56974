"""Engines that are vitstem backends, run through their module-level `forward(spec, weights, images, profile=)`."""

from __future__ import annotations

import importlib

import numpy as np

from .base import Engine, Prepared


class BackendEngine(Engine):
    """vitstem.backends.<name>: the reference's stages written in one framework."""

    def prepare(self, ws, spec, cell, opset):
        forward = importlib.import_module(f"vitstem.backends.{self.name}").forward
        weights = ws.weights(spec)
        return Prepared(lambda x: np.asarray(forward(spec, weights, x, profile=cell.profile)))
