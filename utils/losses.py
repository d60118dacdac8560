"""Training losses, chosen by the config's ``train.loss`` section: ``{name: L1Loss, ...kwargs}``.

A loss is called as ``loss(pred, target)``; ``pred`` is what the network returned (one tensor, or a list of
tensors for multi-scale networks), both in the network's value space.  The engine never looks inside.
"""
import paddle
import paddle.nn.functional as F
from paddle import nn

from networks import primary_output

from .registry import Registry

LOSSES = Registry("loss", "train.loss")


@LOSSES.register
class L1Loss(nn.Layer):
    """Mean absolute error on the (full-resolution) output."""

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred, target):
        return self.loss_weight * (primary_output(pred) - target).abs().mean()


@LOSSES.register
class MSELoss(nn.Layer):
    """Mean squared error on the (full-resolution) output."""

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred, target):
        return self.loss_weight * ((primary_output(pred) - target) ** 2).mean()


@LOSSES.register
class CharbonnierLoss(nn.Layer):
    """sqrt((pred - target)^2 + eps^2), averaged; a smooth L1."""

    def __init__(self, loss_weight=1.0, eps=1e-3):
        super().__init__()
        self.loss_weight, self.eps = loss_weight, eps

    def forward(self, pred, target):
        diff = primary_output(pred) - target
        return self.loss_weight * paddle.sqrt(diff * diff + self.eps ** 2).mean()


@LOSSES.register
class MultiScaleFreqLoss(nn.Layer):
    """MIMO-UNet's loss: content L1 plus frequency L1, summed over every output scale.

    For each output ``p`` of a coarse-to-fine list (or the single output of other networks), the label is
    resized bilinearly (align_corners False, no antialiasing) to ``p``'s size and
    ``content_weight * mean|p - y| + freq_weight * mean|F(p) - F(y)|`` is added, where ``F`` is the
    unnormalised 2-D FFT over H and W with real and imaginary parts as separate entries -- the official
    ``torch.rfft(x, 2, onesided=False)`` formulation, not the complex modulus.  On sizes divisible by 4 the
    resized labels are exactly the official ``interpolate(label, scale_factor=0.5 / 0.25, mode='bilinear')``.
    """

    def __init__(self, content_weight=1.0, freq_weight=0.1):
        super().__init__()
        self.content_weight, self.freq_weight = float(content_weight), float(freq_weight)

    @paddle.jit.not_to_static  # plain Python over the outputs and their shapes, also when traced (cpu_static)
    def forward(self, pred, target):
        terms = []
        for p in (pred if isinstance(pred, (list, tuple)) else [pred]):
            y = target
            if tuple(p.shape[2:]) != tuple(target.shape[2:]):
                y = F.interpolate(target, size=p.shape[2:], mode="bilinear", align_corners=False)
            diff = p.astype("float32") - y.astype("float32")  # the FFT is linear: F(p) - F(y) = F(p - y)
            spec = paddle.fft.fft2(diff)
            freq = (spec.real().abs().mean() + spec.imag().abs().mean()) * 0.5  # mean over [..., 2] stacked parts
            terms.append(self.content_weight * diff.abs().mean() + self.freq_weight * freq)
        return paddle.add_n(terms)


def build_loss(cfg):
    """The loss of a ``train.loss`` section (null: L1Loss)."""
    return LOSSES.build(cfg or {"name": "L1Loss"})
