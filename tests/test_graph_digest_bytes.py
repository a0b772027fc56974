"""The graph digest taken from a model's serialised bytes (export.metadata.fill_graph_digest) is the digest
of the graph's own serialisation, wherever the graph field sits among the model's other fields."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitstem.errors import ExportError
from vitstem.export import metadata


def _model(with_function: bool):
    weights = numpy_helper.from_array(np.arange(300_000, dtype=np.float32).reshape(600, 500), "w")  # > 2**20 bytes
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 600])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 500])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="p",
                              doc_string="d" * 200)
    if with_function:  # a field numbered after metadata_props, so the graph is not the last field
        model.functions.append(helper.make_function("local", "f", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                                                    [helper.make_opsetid("", 18)]))
    metadata.attach(model, {"graph_digest": metadata.PENDING_GRAPH_DIGEST})
    return model


@pytest.mark.parametrize("with_function", [False, True])
def test_the_digest_from_bytes_is_the_graphs_own(with_function):
    model = _model(with_function)
    data = model.SerializeToString(deterministic=True)
    expected = "sha256:" + hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()
    assert bytes(metadata.graph_bytes(data)) == model.graph.SerializeToString(deterministic=True)
    filled = metadata.fill_graph_digest(data)
    assert len(filled) == len(data) and expected.encode() in filled
    assert expected == metadata.graph_digest(model.graph)


def test_the_pending_digest_must_occur_once():
    model = _model(False)
    data = model.SerializeToString(deterministic=True)
    with pytest.raises(ExportError, match="exactly once"):
        metadata.fill_graph_digest(data.replace(metadata.PENDING_GRAPH_DIGEST.encode(), b"sha256:" + b"e" * 64))
    with pytest.raises(ExportError, match="exactly once"):
        metadata.fill_graph_digest(data + metadata.PENDING_GRAPH_DIGEST.encode())


def test_a_model_without_a_graph_is_refused():
    model = _model(False)
    model.ClearField("graph")
    with pytest.raises(ExportError, match="no graph"):
        metadata.graph_bytes(model.SerializeToString(deterministic=True))
