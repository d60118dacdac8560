"""Export a trained network for deployment: Paddle static graph (two formats), metadata, ONNX.

The exported graph is the network wrapped by ``utils.deploy.runners.PipelineModel``: it takes RGB images in [0, 1]
(NCHW float32, any height and width) and returns the full-resolution restoration in the same space, whatever
value range, channel order or multi-scale outputs the network has.  ``inference.yml`` beside it records the
model name, network config, value spaces, size multiple, tile defaults and format for infer.py.

Formats (Paddle 3.3.1), both written in-process whatever IR the process runs (``paddle.pir_utils`` guards):
- ``pdmodel`` (default): the legacy program (``inference.pdmodel``).  OpenVINO's Paddle frontend reads it as it
  is (the fastest CPU engine, infer.py's default when ``openvino`` is installed; the export checks it against the
  network and records the result in ``inference.yml``), so do Paddle Inference (its OpenVINO engine, or oneDNN)
  and paddle2onnx 1.3.1.
- ``json``: the PIR program (``inference.json``), which infer.py runs with the safe oneDNN configuration (no
  OpenVINO engine reads it).
"""
import contextlib
import os

from ..errors import UserError

FORMATS = ("pdmodel", "json")
EXPORT_FILES = ("inference.pdmodel", "inference.json", "inference.pdiparams", "inference.pdiparams.info",
                "inference.onnx", "inference.yml")
ONNX_TOLERANCE = 1e-4


def ir_guard(fmt):
    """A context in which ``paddle.jit.save`` writes ``fmt``: the legacy program or the PIR one."""
    import paddle

    if bool(paddle.framework.use_pir_api()) == (fmt == "json"):
        return contextlib.nullcontext()
    return paddle.pir_utils.IrGuard() if fmt == "json" else paddle.pir_utils.OldIrGuard()


def save_static(net, folder, fmt="pdmodel"):
    """``folder``/inference.{pdmodel|json} + .pdiparams: ``net`` as the pipeline sees it, any height and width."""
    import paddle

    from .runners import pipeline_model

    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    model = pipeline_model(net)  # layers are built in dynamic mode, before the guard
    with ir_guard(fmt):
        static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
        paddle.jit.save(static, os.path.join(folder, "inference"))


def _meta(net, net_cfg, fmt, tile, overlap, auto_pixels, onnx, openvino=None):
    import paddle

    from networks import task_of

    return {
        "model_name": net_cfg["name"],
        "task": task_of(net),
        "network": dict(net_cfg),
        "format": fmt,
        "program": "inference.pdmodel" if fmt == "pdmodel" else "inference.json",
        "params": "inference.pdiparams",
        "onnx": "inference.onnx" if onnx else None,
        "openvino": openvino,
        "input": {"layout": "NCHW", "dtype": "float32", "channel_order": "RGB", "range": [0.0, 1.0]},
        "output": "full-resolution restoration, same layout, order and range as the input",
        "network_space": {"channel_order": getattr(net, "channel_order", "RGB"),
                          "range": [float(v) for v in getattr(net, "input_range", (0.0, 1.0))]},
        "size_multiple": int(getattr(net, "size_multiple", 1)),
        "tile": {"size": int(tile), "overlap": int(overlap), "auto_above_pixels": int(auto_pixels)},
        "paddle_version": paddle.__version__,
    }


def onnx_bytes(folder, opset=13):
    """Convert the legacy program in ``folder`` with paddle2onnx; returns the serialized ONNX model."""
    try:
        import paddle2onnx
    except ImportError:
        raise UserError("ONNX export needs paddle2onnx: pip install paddle2onnx==1.3.1 onnx onnxruntime") from None
    model = os.path.join(folder, "inference.pdmodel")
    if not os.path.isfile(model):
        raise UserError("ONNX export converts the legacy program: export with --format pdmodel")
    try:
        return paddle2onnx.export(model, os.path.join(folder, "inference.pdiparams"), save_file=None,
                                  opset_version=int(opset), verbose=False, enable_onnx_checker=True)
    except Exception as exc:
        raise UserError(f"paddle2onnx {paddle2onnx.__version__} failed: {str(exc).splitlines()[0][:200]} "
                        "(paddle2onnx 1.3.1 is the version known to convert these networks)") from None


def odd_input(net):
    """A random 1 x 3 x H x W input whose sides are not multiples of the network's size multiple."""
    import numpy as np

    m = int(getattr(net, "size_multiple", 1))
    return np.random.RandomState(0).rand(1, 3, 4 * m + 3, 5 * m + 1).astype(np.float32)


def check_openvino(net, folder, tolerance=ONNX_TOLERANCE):
    """OpenVINO (the ``openvino`` package) on the legacy program in ``folder`` against the dygraph network on an
    odd-sized input, for inference.yml: ``{'version', 'max_abs_diff'}``, or ``{'version', 'error'}`` when it does
    not convert or differs by more than ``tolerance`` (infer.py's automatic choice then leaves the OpenVINO
    engines out); None when OpenVINO is not installed."""
    import numpy as np

    from ..errors import EngineError
    from .runners import DygraphRunner, OpenVinoRunner, openvino_module

    ov = openvino_module()
    if ov is None:
        return None
    version, x = ov.__version__.split("-")[0], odd_input(net)
    try:
        got = OpenVinoRunner(folder, onnx_fallback=False)(x)
    except EngineError as exc:
        return {"version": version, "error": f"OpenVINO {version} {exc}"}
    want = DygraphRunner(net)(x)
    diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    if not diff <= tolerance:
        return {"version": version, "error": f"OpenVINO {version} differs from the network by {diff:.3g}"}
    return {"version": version, "max_abs_diff": float(f"{diff:.3g}")}


def check_onnx(net, data, tolerance=ONNX_TOLERANCE):
    """Largest absolute difference between the ONNX model ``data`` and the dygraph network on an odd-sized
    input; raises UserError above ``tolerance`` (a converter bug must not ship)."""
    import numpy as np
    import onnxruntime as ort

    from .runners import DygraphRunner

    x = odd_input(net)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    want = DygraphRunner(net)(x)
    diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    if not diff <= tolerance:
        import paddle2onnx

        raise UserError(f"the ONNX model differs from the network by {diff:.3g} (> {tolerance:g}); "
                        f"paddle2onnx {paddle2onnx.__version__} mis-converted it (use paddle2onnx==1.3.1)")
    return diff


def export_model(net, net_cfg, save_dir, fmt="pdmodel", onnx=False, opset=13, tile=512, overlap=32,
                 auto_pixels=1024 * 1024, inputs=()):
    """Write the static graph (+ ONNX) and inference.yml into ``save_dir``; returns the metadata.

    Files are written in a temporary folder inside ``save_dir`` and moved in only when everything succeeded;
    export files of the other format left from an earlier export are removed so the folder is consistent.
    None of the files written or removed may be one of ``inputs`` (the weights and config read).
    """
    from ..config import dump_config
    from ..fileio import atomic_write_bytes, atomic_write_text, check_not_inputs, output_dir, temporary_dir

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    if onnx and fmt != "pdmodel":
        raise UserError("--onnx needs the default --format pdmodel (paddle2onnx 1.3.1 converts the legacy program)")
    check_not_inputs([os.path.join(save_dir, name) for name in EXPORT_FILES], inputs,
                     "export into another --save-inference-dir")
    net.eval()
    output_dir(save_dir, "--save-inference-dir")
    with temporary_dir(save_dir, "export") as tmp:
        save_static(net, tmp, fmt)
        data = onnx_bytes(tmp, opset) if onnx else None
        diff = check_onnx(net, data) if onnx else None
        checked = check_openvino(net, tmp) if fmt == "pdmodel" else None
        meta = _meta(net, net_cfg, fmt, tile, overlap, auto_pixels, onnx, checked)
        for name in EXPORT_FILES:
            stale = os.path.join(save_dir, name)
            if os.path.isfile(stale):
                os.remove(stale)
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), os.path.join(save_dir, name))
        if data is not None:
            atomic_write_bytes(os.path.join(save_dir, "inference.onnx"), data)
        atomic_write_text(os.path.join(save_dir, "inference.yml"), dump_config(meta))
    meta["onnx_max_abs_diff"] = diff
    return meta
