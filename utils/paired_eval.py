"""Evaluation of a restoration network on (input, target) image pairs: the GoPro test protocol.

Per image, batch 1, the whole image: prediction = the network's full-resolution output (optionally a
self-ensemble, see ``utils.ensemble``) clamped to [0, 1]; PSNR as ``skimage.metrics.peak_signal_noise_ratio``
on the float RGB prediction with data range 1 (the official MIMO-UNet protocol, before any rounding to 8
bits), SSIM as scikit-image's Gaussian SSIM on the same data (``utils.metrics.ssim``).
"""
import os
import time

import numpy as np

from .metrics import psnr, ssim


def _synchronize(device):
    import paddle

    if not str(device).startswith("cpu"):
        paddle.device.synchronize()


def restore(model, x, ensemble="none"):
    """Full-resolution prediction of ``model`` for an RGB [0, 1] NCHW tensor, clamped to [0, 1]."""
    import paddle

    from networks import from_network_space, primary_output, to_network_space

    from .ensemble import self_ensemble

    def forward(t):
        return from_network_space(primary_output(model(to_network_space(t, model))), model)

    with paddle.no_grad():
        return paddle.clip(self_ensemble(forward, x, ensemble), 0.0, 1.0)


def evaluate_pairs(model, dataset, ensemble="none", save_dir=None, timing=False, device="cpu", limit=None,
                   progress=True):
    """Evaluate ``model`` on ``dataset`` (``dataset[i]`` = (input, target), ``dataset.names[i]``).

    Returns a dict: ``psnr``, ``ssim``, ``input_psnr`` (of the blurred input), ``seconds`` (mean network time
    per image after one warm-up run, when ``timing``) and ``rows`` (name, psnr, ssim, input_psnr, seconds).
    Restored images are written to ``save_dir`` under their input names.
    """
    import paddle
    from tqdm import tqdm

    from .image_io import write_image

    model.eval()
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n < 1:
        raise ValueError("nothing to evaluate: the data set is empty")
    names = getattr(dataset, "names", [f"{i:06d}.png" for i in range(len(dataset))])
    rows = []
    for i in tqdm(range(n), desc="evaluate", unit="img", disable=not progress):
        inp, tgt = dataset[i]
        x = paddle.to_tensor(inp[None])
        if timing and i == 0:  # first call: kernel selection and memory set-up, not counted
            restore(model, x, ensemble)
        _synchronize(device)
        start = time.perf_counter()
        pred = restore(model, x, ensemble)
        _synchronize(device)
        seconds = time.perf_counter() - start
        pred = pred.numpy()[0]
        if save_dir:
            write_image(os.path.join(save_dir, os.path.splitext(names[i])[0] + ".png"), pred)
        rows.append((names[i], psnr(pred, tgt), ssim(pred, tgt), psnr(inp, tgt), seconds))
    cols = np.array([r[1:] for r in rows], dtype=np.float64)
    return {"psnr": cols[:, 0].mean(), "ssim": cols[:, 1].mean(), "input_psnr": cols[:, 2].mean(),
            "seconds": cols[:, 3].mean() if timing else None, "rows": rows}


def results_csv(result):
    lines = ["name,psnr,ssim,input_psnr,seconds"]
    lines += [f"{name},{p:.4f},{s:.6f},{pi:.4f},{t:.4f}" for name, p, s, pi, t in result["rows"]]
    return "\n".join(lines) + "\n"
