"""Image quality metrics on float images, for numpy arrays and paddle tensors alike.

Layout is the project's: ``(C, H, W)`` for one image, ``(B, C, H, W)`` for a batch (``(H, W)`` is one
grayscale image).  A single image gives a float, a batch a numpy array of per-image values.  Everything is
computed in float64 on the CPU.

- ``psnr``: identical to ``skimage.metrics.peak_signal_noise_ratio``.
- ``ssim``: identical to ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=...)`` -- the Gaussian-window SSIM of Wang et al. used in
  restoration papers: per-channel SSIM maps, 5-pixel border excluded, mean over channels.
- ``ssim_matlab``: MATLAB's ``ssim`` on an H x W x 3 array, which the SIDD protocol uses: one volumetric
  SSIM with an 11 x 11 x 11 Gaussian window (sigma 1.5) over height, width and channel, replicate padding,
  mean over every voxel.  It differs from ``ssim`` by up to about 0.05; say which one a number uses.
"""
import numpy as np
from scipy import ndimage

K1, K2, SIGMA, RADIUS = 0.01, 0.03, 1.5, 5


def _as_batch(x):
    """numpy float64 (B, C, H, W) and whether the input was a single image."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x[None, None], True
    if x.ndim == 3:
        return x[None], True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"expected an image (H, W) / (C, H, W) or a batch (B, C, H, W), got shape {x.shape}")


def _pair(pred, target):
    a, single = _as_batch(pred)
    b, _ = _as_batch(target)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b, single


def _finish(values, single):
    values = np.asarray(values, dtype=np.float64)
    return float(values[0]) if single else values


def psnr(pred, target, data_range=1.0):
    """Peak signal-to-noise ratio in dB, 10 log10(data_range^2 / MSE) per image."""
    a, b, single = _pair(pred, target)
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return _finish(10.0 * np.log10(data_range ** 2 / mse), single)


def _ssim_map(a, b, smooth, data_range):
    ux, uy = smooth(a), smooth(b)
    vx = smooth(a * a) - ux * ux
    vy = smooth(b * b) - uy * uy
    vxy = smooth(a * b) - ux * uy
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(pred, target, data_range=1.0):
    """Gaussian-window SSIM, equal to scikit-image's with gaussian_weights=True (see module docstring)."""
    a, b, single = _pair(pred, target)
    if min(a.shape[2:]) < 2 * RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least {2 * RADIUS + 1} x {2 * RADIUS + 1}, got {a.shape[2:]}")
    out = []
    for x, y in zip(a, b):
        per_channel = []
        for xc, yc in zip(x, y):
            smap = _ssim_map(xc, yc, lambda t: ndimage.gaussian_filter(t, SIGMA, mode="reflect", radius=RADIUS),
                             data_range)
            per_channel.append(smap[RADIUS:-RADIUS, RADIUS:-RADIUS].mean())
        out.append(np.mean(per_channel))
    return _finish(out, single)


def ssim_matlab(pred, target, data_range=1.0):
    """MATLAB ``ssim`` of an H x W x C array: volumetric Gaussian window, replicate padding, full mean."""
    a, b, single = _pair(pred, target)
    smooth = lambda t: ndimage.gaussian_filter(t, SIGMA, mode="nearest", radius=RADIUS)  # noqa: E731
    return _finish([_ssim_map(x, y, smooth, data_range).mean() for x, y in zip(a, b)], single)
