"""Helpers shared by the networks: PyTorch-default initialisation and padding to a size multiple.

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


def pad_to_multiple(x, multiple):
    """Edge-pad an NCHW tensor at the bottom and right so that H and W are multiples of ``multiple``.

    Works for any size (1 x 1 included) and in exported static graphs of both formats (PIR ``.json`` and the
    legacy ``.pdmodel``), where H and W are only known at run time: there the padding amounts are computed
    as one int32 tensor, which the legacy exporter and paddle2onnx accept.  Crop the result back with
    ``out[:, :, :h, :w]``.
    """
    if paddle.in_dynamic_mode():
        h, w = x.shape[2], x.shape[3]
        pad_h, pad_w = (multiple - h % multiple) % multiple, (multiple - w % multiple) % multiple
        if pad_h == 0 and pad_w == 0:
            return x  # already aligned: no copy
        return F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")
    hw = paddle.cast(paddle.shape(x)[2:4], "int32")
    pad = (multiple - hw % multiple) % multiple  # [pad_h, pad_w]
    zero = paddle.zeros([1], "int32")
    return F.pad(x, paddle.concat([zero, pad[1:2], zero, pad[0:1]]), mode="replicate")
