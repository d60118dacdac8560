"""Post-training INT8 quantisation of an exported legacy program, for oneDNN INT8 inference on CPU.

Paddle's own ``paddle.static.quantization.PostTrainingQuantization`` runs the fp32 program (the legacy
``inference.pdmodel`` that export_model.py writes by default) on calibration images, records the largest
absolute activation of every quantised op (``abs_max``) and per-channel weight scales, and writes a program
with quantize / dequantize ops (``onnx_format``).  Paddle Inference turns those into oneDNN INT8 kernels when
the predictor has ``enable_mkldnn_int8()`` (``utils.deploy.runners.predictor_config`` with ``precision='int8'``).

Quantised ops: conv2d, depthwise_conv2d, matmul, matmul_v2.  Transposed convolutions stay fp32 (quantising
them breaks MIMO-UNet at run time in Paddle 3.3.1).  The program must be the legacy format; the quantiser
runs under ``paddle.pir_utils.OldIrGuard`` whatever IR the process uses.
"""
import os

import numpy as np

from ..errors import UserError

QUANTIZABLE_OPS = ("conv2d", "depthwise_conv2d", "matmul", "matmul_v2")
ALGOS = ("abs_max", "avg", "mse", "KL", "hist")


def calibration_batches(paths, crop=None, limit=8):
    """Feed arrays (1, 3, H, W) float32 RGB [0, 1] of up to ``limit`` images, centre-cropped to ``crop``."""
    from ..image_io import read_image

    if not paths:
        raise UserError("no calibration images found")
    out = []
    for path in paths[:limit]:
        img = read_image(path)
        if crop:
            h, w = img.shape[1:]
            top, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
            img = img[:, top:top + crop, left:left + crop]
        out.append(np.ascontiguousarray(img[None], dtype=np.float32))
    return out


def check_quantizable(model_dir):
    """Metadata of the fp32 legacy export in ``model_dir``; one-line UserError when it cannot be quantised."""
    from .runners import PROGRAMS, find_program, read_meta

    fmt, _, _ = find_program(model_dir)
    if fmt != "pdmodel":
        raise UserError(f"INT8 quantisation needs the legacy program ({PROGRAMS['pdmodel']}); {model_dir} holds the "
                        "PIR format: export again without --format json")
    meta = read_meta(model_dir)
    if meta.get("precision", "fp32") != "fp32":
        raise UserError(f"{model_dir} is already quantised ({meta['precision']})")
    return meta


def quantize_int8(model_dir, batches, save_dir, algo="abs_max", inputs=()):
    """Quantise the legacy program in ``model_dir`` with ``batches`` and write it with its metadata to
    ``save_dir``; returns the metadata written (``inference.yml`` plus ``precision: int8`` and the settings).
    Nothing written may replace a file of ``model_dir`` or of ``inputs`` (the calibration images)."""

    from ..config import dump_config
    from ..fileio import atomic_write_text, check_not_inputs, output_dir
    from .export import EXPORT_FILES, ir_guard
    from .runners import META_FILE, PROGRAMS

    meta = check_quantizable(model_dir)
    if algo not in ALGOS:
        raise UserError(f"unknown calibration algorithm {algo!r} (choose from {', '.join(ALGOS)})")
    check_not_inputs([os.path.join(save_dir, name) for name in EXPORT_FILES],
                     [os.path.join(model_dir, name) for name in EXPORT_FILES] + list(inputs),
                     "write the INT8 model into another --save-dir than the fp32 --model-dir")
    output_dir(save_dir, "--save-dir")
    from paddle.static.quantization import PostTrainingQuantization

    with ir_guard("pdmodel"):
        _calibrate(PostTrainingQuantization, model_dir, batches, save_dir, algo)
    meta.update(precision="int8", onnx=None, quantization={
        "method": "post-training (paddle.static.quantization.PostTrainingQuantization)", "algo": algo,
        "calibration_images": len(batches), "ops": list(QUANTIZABLE_OPS), "weights": "channel_wise_abs_max"})
    for stale in ("inference.onnx", PROGRAMS["json"]):
        if os.path.isfile(os.path.join(save_dir, stale)):
            os.remove(os.path.join(save_dir, stale))
    atomic_write_text(os.path.join(save_dir, META_FILE), dump_config(meta))
    return meta


def _calibrate(ptq_class, model_dir, batches, save_dir, algo):
    import paddle

    from ..fileio import temporary_dir
    from .runners import PARAMS_FILE, PROGRAMS

    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        feed_name = [None]

        def loader():
            for batch in batches:
                yield {feed_name[0]: batch}

        ptq = ptq_class(
            executor=exe, model_dir=model_dir, model_filename=PROGRAMS["pdmodel"], params_filename=PARAMS_FILE,
            data_loader=loader, batch_nums=len(batches), algo=algo, quantizable_op_type=list(QUANTIZABLE_OPS),
            weight_quantize_type="channel_wise_abs_max", onnx_format=True, is_use_cache_file=False)
        ptq._load_model_data()  # noqa: SLF001  (reads the feed name before calibration starts)
        feed_name[0] = ptq._feed_list[0]  # noqa: SLF001
        ptq.quantize()
        with temporary_dir(save_dir, "quantize") as tmp:
            ptq.save_quantized_model(tmp, model_filename=PROGRAMS["pdmodel"], params_filename=PARAMS_FILE)
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), os.path.join(save_dir, name))
    finally:
        paddle.disable_static()
