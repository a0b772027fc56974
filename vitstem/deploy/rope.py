"""Rotary position embeddings (rope) at other image sizes: the encoder learns the patch grid from a second input.

timm models with `rope` (Eva: EVA02, DINOv3, PE, vit_*_rope, ...) rotate q and k inside attention by angles
computed from the patch grid (gh, gw), and z0 (batch, tokens, D) does not tell the grid (4x6, 6x4 and 2x12
give the same count). A whole model that takes other sizes therefore gives its encoder a second input
`grid`: float32 zeros whose *shape* is (gh, gw). The traced encoder computes rope from that shape with the
peer's own code (`rope.get_embed(shape=(gh, gw))`, what timm's dynamic_img_size `_pos_embed` does), and
the joined graph makes the input from the images' shape (`grid_nodes`). A fixed-size export has no grid
input: the native grid's rope is a constant in the file (families._timm_stem_parts).
"""

from __future__ import annotations

from ..errors import ExportError

GRID_INPUT = "grid"
STAGE = "rope_grid"  # the joined graph's nodes that make the grid input


class GridShape:
    """(gh, gw) of the grid input the encoder runs on: set by its forward, read by the rope part. One patch
    until then (the output-name probe runs on the prefix and one patch)."""

    def __init__(self):
        self.hw = (1, 1)


def needs_grid(model, dynamic: bool) -> bool:
    """Whether a timm model's encoder takes the grid input: it has rope and the file takes other sizes."""
    return dynamic and getattr(model, "rope", None) is not None


def rope_pos_embed(model, grid: GridShape):
    """The (owner, attribute, function) stem part replacing timm's `_pos_embed`: z0 unchanged, with rope at
    the grid input's shape, as timm's own `_pos_embed` computes it with dynamic_img_size (api refuses other
    sizes for a model created without it)."""
    def pos_embed(x, *args, **kwargs):
        return x, model.rope.get_embed(shape=grid.hw)

    return (model, "_pos_embed", pos_embed)


def grid_inputs(encoder, grid_hw) -> tuple:
    """The encoder's extra eager inputs at `grid_hw` (the grid zeros, or none)."""
    import torch

    return (torch.zeros(grid_hw),) if encoder.takes_grid else ()


def grid_source(spec, options):
    """(nodes, initializers, output name) for a whole model's graph: float32 zeros of shape (gh, gw), the patch
    grid of its `images` (Shape -> Gather H, W -> Div by the patch -> ConstantOfShape; integer Div rounds
    down, as spec.patch_grid does under input.remainder: drop, and is exact under refuse)."""
    from onnx import TensorProto, helper

    from ..export.graph import GraphBuilder, image_grid
    from ..spec.vocabulary import INPUT_NAME, graph_input

    layout, _ = graph_input(spec, options["preprocess_in_graph"], options["io_dtype"])
    g = GraphBuilder(options["opset"])
    hw = image_grid(g, INPUT_NAME, layout, spec.patch_size, STAGE)
    out = g.op(STAGE, "ConstantOfShape", [hw], value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    return g.nodes, g.initializers, out


def check_grid_input(encoder, name: str, source) -> None:
    """ExportError unless the encoder ModelProto has an input `name` taking the grid: float32 of rank 2."""
    from onnx import TensorProto

    value = next((v for v in encoder.graph.input if v.name == name), None)
    if value is None:
        raise ExportError(f"{source}: the encoder has no grid input {name!r} "
                          f"(inputs: {', '.join(v.name for v in encoder.graph.input)})")
    t = value.type.tensor_type
    if t.elem_type != TensorProto.FLOAT or len(t.shape.dim) != 2:
        raise ExportError(f"{source}: encoder input {name} must be float32 (gh, gw), its shape the patch grid; it "
                          f"has element type {t.elem_type} and rank {len(t.shape.dim)}")


def name_token_axis(proto, z0_name: str) -> None:
    """Rename the symbol torch.export gave z0's token axis (derived from the grid, e.g. `s22`) to `tokens`,
    wherever the graph's inputs, outputs and value infos use it."""
    dim = proto.graph.input[[v.name for v in proto.graph.input].index(z0_name)].type.tensor_type.shape.dim[1]
    symbol = dim.dim_param
    if not symbol or symbol == "tokens":
        return
    for value in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param == symbol:
                d.dim_param = "tokens"
