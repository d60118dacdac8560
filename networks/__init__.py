"""Network registry: ``build_network({'name': 'MIRNet_v2', **constructor_kwargs})``.

Each network class carries ``size_multiple`` (the stride it pads to internally), ``input_range`` and
``channel_order``: the value range and colour order its weights expect, and ``restoration_task``: what it is
for, one of ``TASKS`` ("denoising", "deblurring", "dmsp_prior": the DMSP solver's denoising prior), which the
evaluation and restoration scripts check (an instance may refine it from its arguments).  The pipeline's
images are RGB in [0, 1]; ``to_network_space`` / ``from_network_space`` convert at the network boundary (a
no-op for networks trained on RGB [0, 1]).  A network returns one image tensor, or a list of images from
coarse to fine; ``primary_output`` picks the full-resolution prediction that inference paths use.
"""
from utils.registry import Registry, constructor_args

from .dmsp import DAE, DAE_BN
from .mimo_unet import MIMOUNet, MIMOUNetPlus
from .mirnet_v2 import MIRNet_v2

TASKS = ("denoising", "deblurring", "dmsp_prior")
NETWORKS = Registry("network", "network")
for _cls in (MIRNet_v2, MIMOUNet, MIMOUNetPlus, DAE, DAE_BN):
    NETWORKS.register(_cls)


def get_network_class(name):
    return NETWORKS.get_class(name)


def build_network(cfg):
    """Build a network from a dict whose ``name`` picks the class and whose other keys are its arguments."""
    return NETWORKS.build(cfg)


def task_of(net_or_cls):
    """The restoration task of a network (instance or class): one of TASKS, or None when it does not say."""
    return getattr(net_or_cls, "restoration_task", None)


def network_task(cfg):
    """The restoration task of the network a ``{name: ..., ...}`` config builds (built lazily: no weights)."""
    import paddle

    with paddle.LazyGuard():
        return task_of(build_network(cfg))


def _space(net_or_cls):
    lo, hi = getattr(net_or_cls, "input_range", (0.0, 1.0))
    return float(lo), float(hi), getattr(net_or_cls, "channel_order", "RGB")


def to_network_space(x, net_or_cls):
    """RGB [0, 1] NCHW tensor -> the value range and channel order of the network."""
    lo, hi, order = _space(net_or_cls)
    if order == "BGR":
        x = x.flip(axis=[1])
    return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo


def from_network_space(y, net_or_cls):
    """Inverse of ``to_network_space``."""
    lo, hi, order = _space(net_or_cls)
    if (lo, hi) != (0.0, 1.0):
        y = (y - lo) / (hi - lo)
    return y.flip(axis=[1]) if order == "BGR" else y


def primary_output(out):
    """The full-resolution prediction of a network's output (the last one of a multi-scale list)."""
    return out[-1] if isinstance(out, (list, tuple)) else out


__all__ = ["NETWORKS", "TASKS", "build_network", "constructor_args", "get_network_class", "network_task",
           "primary_output", "task_of",
           "to_network_space", "from_network_space", "MIRNet_v2", "MIMOUNet", "MIMOUNetPlus", "DAE", "DAE_BN"]
