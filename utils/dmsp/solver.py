"""DMSP restoration (Bigdeli et al., "Deep Mean-Shift Priors for Image Restoration", NIPS 2017).

The observation model is ``y = M * (k (*) x + n)``: ``k (*) x`` is the *valid* correlation of the sharp image
x with the blur kernel k (so x is larger than y by the kernel size minus one), n is Gaussian noise of std
``sigma_d`` and M an optional 0/1 sampling mask (super-resolution, demosaicing).  The solver minimises the
Bayes risk with the denoising autoencoder's mean-shift vector as the prior gradient, exactly as the official
loop (MATLAB / TF1 for deblurring, DMSP-TF2 for the mask), on any Paddle device:

    x = edge-pad(fill(y)), step = 0
    repeat: eta ~ N(0, sigma_dae^2)                     (fresh every iteration)
            prior_grad = x - D(x + eta)
            r = M * (k (*) x - y) * numel(M) / sum(M);   data_grad = k^T r   (full convolution, the adjoint)
            w = (1/sigma_d^2) / (1/sigma_d^2 + 1/sigma_dae^2)                               (non-blind)
              = lam / (lam + 1/sigma_dae^2),
                lam = numel(y) / (||r||^2 + sum(M) * 2 sigma_dae^2 ||k||^2)     (noise-blind, sigma_d <= 0)
            step = mu * step - alpha * (w * data_grad + (1 - w) * prior_grad);  x = clip(x + step, 0, 255)

Images are NCHW float32 RGB in [0, 255] (the official scale: ``sigma_d`` and ``sigma_dae`` are on it too).

**Denoiser contract.**  ``denoiser`` is any callable taking a float32 paddle tensor [N, 3, H, W], BGR, values
around [0, 255] (the iterate plus noise, so slightly outside), and returning the denoised tensor of the same
shape, order and scale.  ``layer_denoiser(net)`` wraps a dygraph ``DAE``; ``predictor_denoiser(predictor)``
wraps a Paddle Inference predictor of a DAE saved as it is (BGR, 0-255); ``runner_denoiser(run)`` wraps the
runners of infer.py (the export_model.py graph takes and returns RGB in [0, 1]).  Only forward passes are
needed.
"""
import math

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm import tqdm

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


def _tensor(x):
    """float32 paddle tensor of an array or tensor."""
    return x.astype("float32") if isinstance(x, paddle.Tensor) else paddle.to_tensor(np.asarray(x, np.float32))


def _batch(x, name):
    x = _tensor(x)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be an RGB image [3, H, W] or a batch [N, 3, H, W], got shape {x.shape}")
    return x


def kernel_padding(kernel_shape):
    """(top, bottom, left, right) edge padding from the observation to the sharp image: floor(k/2) for odd k."""
    kh, kw = int(kernel_shape[-2]), int(kernel_shape[-1])
    return (kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2


class BlurOperator:
    """Valid correlation with a blur kernel and its adjoint (the full convolution), batched.

    ``kernel`` is [kh, kw] (shared) or [N, kh, kw] (one per image); ``image_hw`` the size of the sharp image.
    ``method`` 'fft' (exact up to float32 rounding, fast) or 'conv' (direct depthwise convolution, for
    devices without FFT kernels).
    """

    def __init__(self, kernel, image_hw, method="fft"):
        k = _tensor(kernel)
        if k.ndim == 2:
            k = k.unsqueeze(0)
        if k.ndim != 3:
            raise ValueError(f"kernel must be [kh, kw] or [N, kh, kw], got shape {k.shape}")
        if method not in ("fft", "conv"):
            raise ValueError(f"method must be 'fft' or 'conv', got {method!r}")
        self.kernel, self.method = k, method
        self.kh, self.kw = int(k.shape[1]), int(k.shape[2])
        self.h, self.w = int(image_hw[0]), int(image_hw[1])
        if self.h < self.kh or self.w < self.kw:
            raise ValueError(f"image {self.h} x {self.w} is smaller than the kernel {self.kh} x {self.kw}")
        self.norm2 = (k * k).sum(axis=[1, 2]).reshape([-1, 1, 1, 1])  # ||k||^2 per kernel
        if method == "fft":
            padded = F.pad(k.unsqueeze(1), [0, self.w - self.kw, 0, self.h - self.kh])  # [N, 1, H, W]
            self._spectrum = paddle.fft.rfft2(padded)

    def _weight(self, n, c):
        k = self.kernel
        if k.shape[0] == 1:
            k = k.expand([n, self.kh, self.kw])
        elif k.shape[0] != n:
            raise ValueError(f"{k.shape[0]} kernels for a batch of {n} images")
        return k.unsqueeze(1).tile([1, c, 1, 1]).reshape([n * c, 1, self.kh, self.kw])

    def forward(self, x):
        """Valid correlation: [N, C, H, W] -> [N, C, H - kh + 1, W - kw + 1]."""
        hv, wv = self.h - self.kh + 1, self.w - self.kw + 1
        if self.method == "fft":
            spec = paddle.fft.rfft2(x) * paddle.conj(self._spectrum)
            return paddle.fft.irfft2(spec, s=[self.h, self.w])[:, :, :hv, :wv]
        n, c = x.shape[0], x.shape[1]
        out = F.conv2d(x.reshape([1, n * c, self.h, self.w]), self._weight(n, c), groups=n * c)
        return out.reshape([n, c, hv, wv])

    def adjoint(self, r):
        """Full convolution, the adjoint of ``forward``: [N, C, Hv, Wv] -> [N, C, H, W]."""
        if self.method == "fft":
            return paddle.fft.irfft2(paddle.fft.rfft2(r, s=[self.h, self.w]) * self._spectrum, s=[self.h, self.w])
        n, c = r.shape[0], r.shape[1]
        out = F.conv2d_transpose(r.reshape([1, n * c, r.shape[2], r.shape[3]]), self._weight(n, c), groups=n * c)
        return out.reshape([n, c, self.h, self.w])


def default_operator_method():
    """'fft' on CPU and GPU; direct convolution on custom devices (NPU), whose FFT support varies."""
    place = paddle.get_device()
    return "fft" if place.startswith(("cpu", "gpu")) else "conv"


def sampling_mask(shape_hw, task, scale=2, pattern="RGGB"):
    """0/1 float32 mask [3, H, W] (RGB channel order) of the observed samples.

    ``task`` 'deblur': all ones; 'sr': every ``scale``-th pixel in both directions, from the top-left, all
    channels (the DMSP-TF2 convention); 'demosaic': one colour per pixel in the Bayer ``pattern``.
    """
    h, w = int(shape_hw[0]), int(shape_hw[1])
    mask = np.zeros((3, h, w), dtype=np.float32)
    if task == "deblur":
        mask[:] = 1.0
    elif task == "sr":
        if int(scale) < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        mask[:, ::int(scale), ::int(scale)] = 1.0
    elif task == "demosaic":
        pattern = str(pattern).upper()
        if pattern not in BAYER_PATTERNS:
            raise ValueError(f"unknown Bayer pattern {pattern!r}; known: {', '.join(BAYER_PATTERNS)}")
        for (dy, dx), colour in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern):
            mask["RGB".index(colour), dy::2, dx::2] = 1.0
    else:
        raise ValueError(f"unknown task {task!r}: deblur, sr or demosaic")
    return mask


def fill_missing(degraded, mask):
    """Observed samples kept, missing ones set to the normalised 3 x 3 box average of observed neighbours.

    One pass is the DMSP-TF2 initialisation; passes repeat (averaging what the previous pass filled) until no
    hole is left, which only sparser masks than x3 sampling need.
    """
    y, m = degraded * mask, mask.expand(degraded.shape)
    c = y.shape[1]
    box = paddle.ones([c, 1, 3, 3], dtype="float32")
    known = m
    for _ in range(max(y.shape[2], y.shape[3])):
        total = F.conv2d(y, box, padding=1, groups=c)
        weight = F.conv2d(known, box, padding=1, groups=c)
        y = y * known + total / paddle.clip(weight, min=1e-5) * (1.0 - known)
        known = paddle.maximum(known, (weight > 0).astype("float32"))
        if bool(known.min() > 0):
            break
    return y


def initial_estimate(degraded, kernel_shape, mask=None):
    """The official starting point: missing samples filled, then edge-padded to the sharp image's size."""
    y = _batch(degraded, "degraded")
    if mask is not None:
        y = fill_missing(y, _tensor(mask))
    top, bottom, left, right = kernel_padding(kernel_shape)
    return F.pad(y, [left, right, top, bottom], mode="replicate") if top + bottom + left + right else y


def official_psnr(pred, target, kernel_shape=(1, 1), rounding="round"):
    """PSNR of the official demos, per image: crop floor(k/2) from each border, clip to [0, 255], quantise to
    8 bits, 20 log10(255 / RMSE) over all values.  ``rounding`` 'round' (MATLAB) or 'floor' (the Python
    demos' astype(uint8)).  Inputs [3, H, W] (gives a float) or [N, 3, H, W] (a numpy array), 0-255 scale."""
    a = pred.numpy() if isinstance(pred, paddle.Tensor) else np.asarray(pred)
    b = target.numpy() if isinstance(target, paddle.Tensor) else np.asarray(target)
    single = a.ndim == 3
    a, b = (a[None], b[None]) if single else (a, b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    py, px = int(kernel_shape[-2]) // 2, int(kernel_shape[-1]) // 2
    a = a[:, :, py:a.shape[2] - py, px:a.shape[3] - px].astype(np.float64)
    b = b[:, :, py:b.shape[2] - py, px:b.shape[3] - px].astype(np.float64)
    q = np.round if rounding == "round" else np.floor
    diff = q(np.clip(a, 0, 255)) - q(np.clip(b, 0, 255))
    with np.errstate(divide="ignore"):
        out = 20.0 * np.log10(255.0 / np.sqrt((diff ** 2).mean(axis=(1, 2, 3))))
    return float(out[0]) if single else out


def _psnr_tensor(x, gt, pad):
    py, px = pad
    a = paddle.round(paddle.clip(x[:, :, py:x.shape[2] - py, px:x.shape[3] - px], 0.0, 255.0))
    b = paddle.round(paddle.clip(gt[:, :, py:gt.shape[2] - py, px:gt.shape[3] - px], 0.0, 255.0))
    mse = ((a - b) ** 2).mean()
    return 20.0 * math.log10(255.0) - 10.0 * math.log10(max(mse.item(), 1e-12))


def layer_denoiser(net):
    """Denoiser callable of a dygraph network (put in eval mode, run without gradients)."""
    net.eval()

    def denoise(x):
        with paddle.no_grad():
            return net(x)

    return denoise


def predictor_denoiser(predictor):
    """Denoiser callable of a Paddle Inference predictor of the exported DAE (one input, one output)."""
    input_name, output_name = predictor.get_input_names()[0], predictor.get_output_names()[0]

    def denoise(x):
        handle = predictor.get_input_handle(input_name)
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(np.ascontiguousarray(x.numpy(), dtype=np.float32))
        predictor.run()
        out = predictor.get_output_handle(output_name).copy_to_cpu()
        return paddle.to_tensor(out, place=x.place)

    return denoise


def runner_denoiser(run):
    """Denoiser callable of a pipeline-space runner (``utils.deploy.runners``: RGB in [0, 1] in and out), such as the
    DAE exported by export_model.py under Paddle Inference or ONNX Runtime: the solver's BGR [0, 255] iterate is
    flipped to RGB and divided by 255 on the way in, the output multiplied back and flipped on the way out."""

    def denoise(x):
        rgb = np.ascontiguousarray(x.numpy()[:, ::-1], dtype=np.float32) / np.float32(255.0)
        out = np.asarray(run(rgb), dtype=np.float32)[:, ::-1] * np.float32(255.0)
        return paddle.to_tensor(np.ascontiguousarray(out), place=x.place)

    denoise.description = getattr(run, "description", None)  # the engine that runs, for the logs
    return denoise


def dmsp_restore(degraded, denoiser, kernel=None, mask=None, sigma_d=-1.0, sigma_dae=11.0, num_iter=300,
                 mu=0.9, alpha=0.1, gt=None, seed=None, progress=True, method=None, desc="DMSP"):
    """Restore ``degraded`` ([3, h, w] or [N, 3, h, w], RGB, 0-255) with the DMSP loop (module docstring).

    ``kernel``: [kh, kw] or [N, kh, kw] (None: no blur); ``mask``: [3 | 1, h, w] or [N, 3 | 1, h, w] 0/1
    samples (None: all observed); ``sigma_d`` <= 0 estimates the noise (noise-blind); ``gt``: sharp images
    [N, 3, h + kh - 1, w + kw - 1] to show PSNR in the progress bar; ``seed``: the noise sequence (numpy
    generator, identical on every device).  Returns the restored [N, 3, h + kh - 1, w + kw - 1] tensor.
    """
    y = _batch(degraded, "degraded")
    n, _, hv, wv = y.shape
    kernel = np.ones((1, 1), np.float32) if kernel is None else kernel
    k = _tensor(kernel)
    kh, kw = int(k.shape[-2]), int(k.shape[-1])
    m = None
    if mask is not None:
        m = _tensor(mask)
        m = m.unsqueeze(0) if m.ndim == 3 else m
        if m.ndim != 4 or list(m.shape[2:]) != [hv, wv]:
            raise ValueError(f"mask of shape {m.shape} does not fit the observation {[n, 3, hv, wv]}")
        m = m.expand([n, 3, hv, wv]).astype("float32")
    x = initial_estimate(y, (kh, kw), m)
    h, w = x.shape[2], x.shape[3]
    op = BlurOperator(k, (h, w), method or default_operator_method())
    # Work in BGR, the denoiser's order (the kernel and the noise do not care about the channel order).
    y, x = y.flip(axis=[1]), x.flip(axis=[1])
    if m is not None:
        m = m.flip(axis=[1])
        count = m.sum(axis=[1, 2, 3], keepdim=True)  # observed samples per image
        if bool((count <= 0).any()):
            raise ValueError("the sampling mask observes no pixel")
        scale = (3 * hv * wv) / count
    else:
        count, scale = None, None
    truth = None
    if gt is not None:
        truth = _batch(gt, "gt").flip(axis=[1])
        if list(truth.shape) != [n, 3, h, w]:
            raise ValueError(f"gt of shape {truth.shape} does not fit the restored size {[n, 3, h, w]}")
    inv_dae = 1.0 / (sigma_dae * sigma_dae)
    blind = sigma_d is None or sigma_d <= 0
    if not blind:
        weight = (1.0 / sigma_d ** 2) / (1.0 / sigma_d ** 2 + inv_dae)
    numel = float(3 * hv * wv)
    rng = np.random.default_rng(seed)
    step = paddle.zeros_like(x)
    bar = tqdm(range(int(num_iter)), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for it in bar:
        eta = paddle.to_tensor(rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma_dae),
                               place=x.place)
        rec = denoiser(x + eta)
        if not isinstance(rec, paddle.Tensor):
            rec = paddle.to_tensor(np.asarray(rec, dtype=np.float32), place=x.place)
        if it == 0 and list(rec.shape) != list(x.shape):
            raise ValueError(f"the denoiser returned shape {rec.shape} for an input of shape {x.shape}")
        prior_grad = x - rec
        r = op.forward(x) - y
        if m is not None:
            r = r * m * scale
        data_grad = op.adjoint(r)
        if blind:
            observed = numel if count is None else count
            sq = (r * r).sum(axis=[1, 2, 3], keepdim=True)
            lam = numel / (sq + observed * 2.0 * sigma_dae * sigma_dae * op.norm2)
            weight = lam / (lam + inv_dae)
        step = mu * step - alpha * (weight * data_grad + (1.0 - weight) * prior_grad)
        x = paddle.clip(x + step, 0.0, 255.0)
        if truth is not None and progress:
            bar.set_postfix(psnr=f"{_psnr_tensor(x, truth, (kh // 2, kw // 2)):.2f}")
    bar.close()
    return x.flip(axis=[1])


def synthesize(sharp, task="deblur", kernel=None, sigma_d=2.55, scale=2, pattern="RGGB", seed=None,
               method=None):
    """The official demos' degradation of sharp RGB images (0-255): valid correlation with ``kernel``, plus
    N(0, sigma_d^2) noise, then the task's sampling mask (zeros where unobserved).

    Returns (degraded [N, 3, hv, wv], mask [3, hv, wv] or None for deblurring) as paddle tensors.
    """
    x = _batch(sharp, "sharp")
    kernel = np.ones((1, 1), np.float32) if kernel is None else kernel
    op = BlurOperator(kernel, x.shape[2:], method or default_operator_method())
    y = op.forward(x)
    if sigma_d and sigma_d > 0:
        rng = np.random.default_rng(seed)
        y = y + paddle.to_tensor(rng.normal(0.0, sigma_d, y.shape).astype(np.float32), place=y.place)
    if task == "deblur":
        return y, None
    mask = paddle.to_tensor(sampling_mask(y.shape[2:], task, scale, pattern), place=y.place)
    return y * mask, mask


def inference_denoiser(net, threads=None):
    """Denoiser callable running ``net`` through infer.py's default CPU engine (the deployment path: the network
    is exported to a temporary static model, loaded by ``--backend auto`` as infer.py loads it, and the files
    removed; OpenVINO when it is installed, else Paddle Inference); several times faster than dygraph there."""
    import tempfile

    from ..deploy.export import export_model
    from ..deploy.runners import make_runner

    net.eval()
    with tempfile.TemporaryDirectory(prefix="dmsp_dae_") as folder:
        export_model(net, {"name": type(net).__name__}, folder)
        runner = make_runner("auto", folder, "cpu", threads)
    return runner_denoiser(runner)
