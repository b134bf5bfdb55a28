"""Tiny ONNX models with the signatures of insightface's inswapper_128 and ArcFace.

insightface's `model_zoo.get_model(path)` routes an ONNX file by its inputs: two inputs of
128x128 -> `INSwapper` (which reads the 512x512 `emap` as the graph's LAST initializer), one square
input >= 112 -> `ArcFaceONNX`. These graphs satisfy exactly that, so the swap and embedding code
paths run unchanged on them. The graphs are written with `onnx.helper` (no exporter needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import register_tiny

OPSET = 17
IR_VERSION = 9


def _init(name: str, array: np.ndarray):  # type: ignore[no-untyped-def]
    from onnx import numpy_helper

    return numpy_helper.from_array(array.astype(np.float32), name)


@register_tiny("inswapper", version=1)
def build_tiny_inswapper(folder: Path) -> Path:
    """target [n,3,128,128] in [0,1], source [n,512] -> output [n,3,128,128] in [0,1]."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["target", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("MatMul", ["source", "style_w"], ["style"]),
        helper.make_node("Reshape", ["style", "style_shape"], ["style4"]),
        helper.make_node("Add", ["conv", "style4"], ["mixed"]),
        helper.make_node("Sigmoid", ["mixed"], ["output"]),
    ]
    conv_w = np.zeros((3, 3, 3, 3), np.float32)
    conv_w[:, :, 1, 1] = np.eye(3) * 4.0  # mostly keeps the target, so a swap looks like its target
    inits = [
        _init("conv_w", conv_w + rng.normal(0, 0.05, conv_w.shape)),
        _init("conv_b", np.full(3, -2.0)),
        _init("style_w", rng.normal(0, 0.05, (512, 3))),
        helper.make_tensor("style_shape", TensorProto.INT64, [4], [-1, 3, 1, 1]),
        _init("emap", np.eye(512) + rng.normal(0, 0.01, (512, 512))),  # must stay last
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_inswapper",
        [
            helper.make_tensor_value_info("target", TensorProto.FLOAT, ["n", 3, 128, 128]),
            helper.make_tensor_value_info("source", TensorProto.FLOAT, ["n", 512]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, 128, 128])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    out = folder / "inswapper_128_tiny.onnx"
    onnx.save(model, out)
    return out


@register_tiny("arcface", version=1)
def build_tiny_arcface(folder: Path) -> Path:
    """input [n,3,112,112] -> embedding [n,512] (conv, global pool, linear)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w", "conv_b"], ["conv"], strides=[4, 4], kernel_shape=[8, 8]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["embedding"], transB=1),
    ]
    inits = [
        _init("conv_w", rng.normal(0, 0.1, (16, 3, 8, 8))),
        _init("conv_b", np.zeros(16)),
        _init("fc_w", rng.normal(0, 0.05, (512, 16 * 6 * 6))),
        _init("fc_b", np.zeros(512)),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["n", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 512])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    out = folder / "w600k_tiny.onnx"
    onnx.save(model, out)
    return out
