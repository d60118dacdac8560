"""Training losses, chosen by the config's ``train.loss`` section: ``{type: L1Loss, ...kwargs}``.

A loss is called as ``loss(pred, target)``; ``pred`` is what the network returned (one tensor, or a list of
tensors for multi-scale networks), both in the network's value space.  The engine never looks inside.
"""
import paddle
from paddle import nn

from networks import primary_output


class L1Loss(nn.Layer):
    """Mean absolute error on the (full-resolution) output."""

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred, target):
        return self.loss_weight * (primary_output(pred) - target).abs().mean()


class MSELoss(nn.Layer):
    """Mean squared error on the (full-resolution) output."""

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred, target):
        return self.loss_weight * ((primary_output(pred) - target) ** 2).mean()


class CharbonnierLoss(nn.Layer):
    """sqrt((pred - target)^2 + eps^2), averaged; a smooth L1."""

    def __init__(self, loss_weight=1.0, eps=1e-3):
        super().__init__()
        self.loss_weight, self.eps = loss_weight, eps

    def forward(self, pred, target):
        diff = primary_output(pred) - target
        return self.loss_weight * paddle.sqrt(diff * diff + self.eps ** 2).mean()


LOSSES = {cls.__name__: cls for cls in (L1Loss, MSELoss, CharbonnierLoss)}


def build_loss(cfg):
    from utils.config import ConfigError

    cfg = dict(cfg or {"type": "L1Loss"})
    name = cfg.pop("type", "L1Loss")
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    try:
        return LOSSES[name](**cfg)
    except TypeError as exc:
        raise ConfigError(f"bad arguments for loss {name}: {exc}") from None
