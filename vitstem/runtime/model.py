"""`Model`: a whole model (a vitstem stem joined to an encoder): images in, the peer's outputs by name."""

from __future__ import annotations

import numpy as np

from ..spec.exported import check_whole_io, expected_io, parse_encoder
from .stem import Stem


class Model(Stem):
    """Callable: images (validated against the stored spec, as for a Stem) -> {output name: array},
    in the order the peer's forward returns them (vitstem.encoder.outputs)."""

    def _check_io(self, io, source) -> None:
        self.encoder: dict = parse_encoder(self.metadata["encoder"], source)
        check_whole_io(source, expected_io(self.spec, self.options)[0], self.encoder, *io)
        self.output_names: list[str] = list(self.encoder["outputs"])

    def __call__(self, images) -> dict[str, np.ndarray]:
        x = self.check(images)
        return dict(zip(self.output_names, self._run(self.output_names, x)))

    def __repr__(self) -> str:
        e = self.encoder
        return (f"Model({self.spec.name!r} + {e['peer']} {e['class']}, precision={self.options.get('precision')}, "
                f"input {self.input_dtype} {self.layout}, outputs {', '.join(self.output_names)})")
