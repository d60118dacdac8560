"""Helpers shared by the networks: PyTorch-default initialisation, padding to a size multiple, and the
element-wise steps of the forward passes (``OPS``).

Paddle's default convolution initialiser (normal with std sqrt(2 / fan_in)) differs from PyTorch's
(uniform in +-1/sqrt(fan_in)); the official models were trained from PyTorch's default, so the ported
networks re-initialise their own layers with it.  This touches only the layers passed in, never a
process-global default.
"""
import math

import paddle
import paddle.nn.functional as F
from paddle import nn

_LAYERS = (nn.Conv2D, nn.Conv2DTranspose, nn.Linear)


class Ops:
    """Element-wise steps of the networks' forward passes, as Paddle operators.

    A training engine may set faster kernels for dygraph float32 CPU calls on the instance ``OPS``
    (``utils/engine/onednn.py``); they compute the same values, and every other call -- static programs,
    exports, other dtypes and devices -- still reaches these operators."""

    @staticmethod
    def mul(x, y):
        return x * y

    @staticmethod
    def add(x, y):
        return x + y

    @staticmethod
    def concat(xs, axis):
        return paddle.concat(xs, axis=axis)

    @staticmethod
    def mean_hw(x):
        """Mean over H and W, kept as [N, C, 1, 1]."""
        return F.adaptive_avg_pool2d(x, 1)

    @staticmethod
    def conv_add(conv, x, residual):
        """``conv(x) + residual``: a convolution layer's output plus a tensor of its shape."""
        return conv(x) + residual

    @staticmethod
    def conv_chain(layers, x):
        """``layers(x)``, where ``layers`` computes only convolutions, ReLUs and sums of equal-shape activations
        (``+`` or ``conv_add``), so a kernel library may keep the activations inside in a layout of its own."""
        return layers(x)

    @staticmethod
    def nearest_half(x):
        """Nearest downsampling by 2: rows and columns 0, 2, 4, ... (floor of odd sizes)."""
        h, w = x.shape[2], x.shape[3]
        if isinstance(h, int) and isinstance(w, int) and min(h, w) < 0:
            # sizes known only when the program runs, in traced code that dy2static's rewrite of ``x.shape``
            # did not reach (called through a function the training engine set)
            size = paddle.shape(x)
            h, w = size[2], size[3]
        return x[:, :, 0:h // 2 * 2:2, 0:w // 2 * 2:2]

    @staticmethod
    def upsample2(x, mode):
        """Resize by 2: ``nearest`` (each pixel in a 2 x 2 block) or ``bilinear`` (align_corners False)."""
        return F.interpolate(x, scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))


OPS = Ops()


def _fan_in(weight, layer):
    shape = weight.shape
    if isinstance(layer, nn.Linear):  # paddle stores Linear weights as [in, out]
        return shape[0]
    receptive = 1
    for s in shape[2:]:
        receptive *= s
    return shape[1] * receptive


def torch_default_init(model):
    """Initialise every conv / linear layer of ``model`` as PyTorch does by default."""
    for layer in model.sublayers(include_self=True):
        if not isinstance(layer, _LAYERS) or not layer.weight._is_initialized():
            continue  # not a conv / linear layer, or built under paddle.LazyGuard (shapes only)
        bound = 1.0 / math.sqrt(max(_fan_in(layer.weight, layer), 1))
        with paddle.no_grad():
            layer.weight.set_value(paddle.uniform(layer.weight.shape, layer.weight.dtype, -bound, bound))
            if getattr(layer, "bias", None) is not None:
                layer.bias.set_value(paddle.uniform(layer.bias.shape, layer.bias.dtype, -bound, bound))
    return model


def _clamped_range(n, pad):
    """int64 indices 0, 1, ..., n - 1 followed by ``pad`` copies of n - 1 (``n``, ``pad``: scalar tensors).  The
    clamp is written with arithmetic: ``paddle.minimum`` does not export to the legacy program."""
    i = paddle.arange(0, n + pad, dtype="int64")
    n = n.astype("int64")
    return i - (i >= n).astype("int64") * (i - n + 1)


@paddle.jit.not_to_static
def _known_hw(x):
    """(H, W) as Python ints when they are known (dygraph, or a program traced for one size), else None.  Kept
    out of dy2static, which would turn the shape of an any-size input into a tensor."""
    h, w = x.shape[2], x.shape[3]
    return (h, w) if paddle.in_dynamic_mode() or (h > 0 and w > 0) else None


def pad_to_multiple(x, multiple):
    """Edge-pad an NCHW tensor at the bottom and right so that H and W are multiples of ``multiple``.

    Works for any size (1 x 1 included).  Where H and W are known (dygraph, or a program traced for one input
    size) it is a replicate ``pad`` of Python ints.  In exported static graphs of both formats (PIR ``.json``
    and the legacy ``.pdmodel``), where H and W are known only at run time, it gathers rows and columns with
    clamped indices (``index_select``) instead: a ``pad3d`` whose paddings are a run-time tensor cannot be
    converted by OpenVINO's Paddle frontend (which reads constant paddings only, and blocks Paddle Inference's
    OpenVINO engine with it); the gather converts in OpenVINO, paddle2onnx 1.3.1 and oneDNN alike and copies
    exactly the edge pixels.  Crop the result back with ``out[:, :, :h, :w]``.
    """
    known = _known_hw(x)
    if known is not None:
        h, w = known
        pad_h, pad_w = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
        if pad_h == 0 and pad_w == 0:
            return x  # already aligned: no copy
        return F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")
    hw = paddle.shape(x)
    rows = _clamped_range(hw[2], (multiple - hw[2] % multiple) % multiple)
    cols = _clamped_range(hw[3], (multiple - hw[3] % multiple) % multiple)
    return paddle.index_select(paddle.index_select(x, rows, axis=2), cols, axis=3)
