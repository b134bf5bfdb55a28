"""Tiny ONNX models with the signatures of insightface's inswapper_128, ArcFace, SCRFD and landmarks.

insightface's `model_zoo.get_model(path)` routes an ONNX file by its graph: >= 5 outputs -> `SCRFD`
(det_10g: 9 outputs), a 192x192 input -> `Landmark` (1k3d68: 3309 outputs, 2d106det: 212), two
inputs of 128x128 -> `INSwapper` (which reads the 512x512 `emap` as the graph's LAST initializer),
one square input >= 112 -> `ArcFaceONNX`. These graphs satisfy exactly that, so the detection,
landmark, swap and embedding code paths run unchanged on them. The graphs are written with
`onnx.helper` (no exporter needed).
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


def _save(model, out: Path) -> Path:  # type: ignore[no-untyped-def]
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, out)
    return out


def _model(nodes: list, name: str, inputs: list, outputs: list, inits: list):  # type: ignore[no-untyped-def]
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


#: Half the side of a detected box, in strides of its feature level (a box is 4 strides wide).
DET_HALF_BOX = 2.0
DET_STRIDES = (8, 16, 32)


def mean_face_in_box(half: float = 1.0) -> np.ndarray:
    """The 68-point mean face centred on (0, 0), its landmark box 0.9 x `2 * half` wide."""
    from fairforge.generate.align import MEAN_FACE_68

    lo, hi = MEAN_FACE_68.min(0), MEAN_FACE_68.max(0)
    return (MEAN_FACE_68 - (lo + hi) / 2) * (0.9 * 2 * half / (hi - lo).max())


def write_tiny_scrfd(out: Path, seed: int = 2) -> Path:
    """SCRFD with det_10g's signature: input [1,3,H,W]; 9 outputs score/bbox/kps x strides 8, 16, 32.

    insightface routes a graph with >= 5 outputs to `SCRFD`, and 9 outputs mean 3 feature levels, 2
    anchors per position and keypoints. A "face" is a bright blob on a dark ground: each level
    scores an anchor by how much brighter the 4-stride window centred on it is than the ring around
    it (out to 6 strides), so a blob is found at the level and place whose box it fills; the box is
    that window and the 5 keypoints are the mean face's in it. Rows are ordered (y, x, anchor) as
    SCRFD decodes them.
    """
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    kps = np.asarray(_kps5(mean_face_in_box(DET_HALF_BOX)), dtype=np.float64).reshape(-1)  # 10, stride units
    gain, threshold = 10.0, 0.8  # input (pixel - 127.5) / 128: white on black is a difference of ~1.7
    nodes, inits, outputs = [], [], []
    heads = {"score": (1, "Sigmoid"), "bbox": (4, None), "kps": (10, None)}
    for part, (width, activation) in heads.items():
        for s in DET_STRIDES:
            channels = 2 * width
            if part == "score":
                k = 6 * s
                inner = np.zeros((k, k), bool)
                inner[s : 5 * s, s : 5 * s] = True
                kernel = np.where(inner, 1 / inner.sum(), -1 / (~inner).sum()) * gain / 3
                weight = np.broadcast_to(kernel, (channels, 3, k, k)) + rng.normal(0, 1e-5, (channels, 3, k, k))
                bias = np.full(channels, -gain * threshold)
                pads = [3 * s, 3 * s, 2 * s, 2 * s]
            else:
                k, pads = 1, [0, 0, 0, 0]
                weight = rng.normal(0, 1e-4, (channels, 3, 1, 1))
                bias = np.tile(np.full(4, DET_HALF_BOX) if part == "bbox" else kps, 2)
            name = f"{part}_{s}"
            inits += [_init(f"{name}_w", weight), _init(f"{name}_b", bias)]
            conv = f"{name}_conv"
            nodes.append(
                helper.make_node(
                    "Conv",
                    ["input.1", f"{name}_w", f"{name}_b"],
                    [conv],
                    kernel_shape=[k, k],
                    strides=[s, s],
                    pads=pads,
                )
            )
            if activation:
                nodes.append(helper.make_node(activation, [conv], [f"{name}_act"]))
                conv = f"{name}_act"
            nodes.append(helper.make_node("Transpose", [conv], [f"{name}_nhwc"], perm=[0, 2, 3, 1]))
            inits.append(helper.make_tensor(f"{name}_shape", TensorProto.INT64, [2], [-1, width]))
            nodes.append(helper.make_node("Reshape", [f"{name}_nhwc", f"{name}_shape"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{s}", width]))
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])]
    return _save(_model(nodes, "tiny_scrfd", inputs, outputs, inits), out)


def _kps5(landmarks: np.ndarray) -> np.ndarray:
    from fairforge.generate.align import kps5_from_68

    return kps5_from_68(landmarks)


def write_tiny_landmark(out: Path, points: int, dims: int, seed: int) -> Path:
    """A 192x192 landmark net: [1,3,192,192] -> [1, points*dims] (1k3d68: 3309 = 1103 x 3; 2d106det: 212).

    insightface's `Landmark` reads the points in [-1, 1] of its crop (1.5x the detected box); the
    output is the mean face there plus a small image-dependent term, so landmarks sit on the box.
    """
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    face = mean_face_in_box(1 / 1.5)  # the detected box spans [-1/1.5, 1/1.5] of the crop
    if points == 68:
        shape = face
    else:  # 106: the 68 points and points halfway between consecutive ones
        mids = (face[:-1] + face[1:]) / 2
        shape = np.concatenate([face, mids[: points - 68]])
    if dims == 3:
        shape = np.concatenate([shape, np.zeros((len(shape), 1))], axis=1)
    total = 3309 if (points, dims) == (68, 3) else points * dims
    bias = np.zeros((total // dims, dims))
    bias[-len(shape) :] = shape  # insightface keeps the LAST `points` rows
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc1"]),
    ]
    inits = [_init("fc_w", rng.normal(0, 1e-3, (3, total))), _init("fc_b", bias.reshape(-1))]
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])]
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, total])]
    return _save(_model(nodes, f"tiny_landmark_{dims}d_{points}", inputs, outputs, inits), out)
