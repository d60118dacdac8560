"""Network registry: ``build_network({'name': 'MIRNet_v2', **constructor_kwargs})``.

Each network class carries ``size_multiple`` (the stride it pads to internally), ``input_range`` and
``channel_order``: the value range and colour order its weights expect.  The pipeline's images are RGB in
[0, 1]; ``to_network_space`` / ``from_network_space`` convert at the network boundary (a no-op for networks
trained on RGB [0, 1]).  A network returns one image tensor, or a list of images from coarse to fine;
``primary_output`` picks the full-resolution prediction that inference paths use.
"""
import difflib
import inspect

from .dmsp import DAE, DAE_BN
from .mimo_unet import MIMOUNet, MIMOUNetPlus
from .mirnet_v2 import MIRNet_v2

NETWORKS = {cls.__name__: cls for cls in (MIRNet_v2, MIMOUNet, MIMOUNetPlus, DAE, DAE_BN)}


def _closest(name, options):
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def constructor_args(cls):
    """Names and defaults of a registered network's constructor arguments."""
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


def get_network_class(name):
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}{_closest(str(name), NETWORKS)}; "
                       f"registered: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name]


def build_network(cfg):
    """Build a network from a dict whose ``name`` picks the class and whose other keys are its arguments."""
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"network config must be a dict with a 'name' key, got {cfg!r}")
    kwargs = dict(cfg)
    cls = get_network_class(kwargs.pop("name"))
    allowed = constructor_args(cls)
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        hints = "; ".join(f"{k!r}{_closest(k, allowed)}" for k in unknown)
        raise TypeError(f"{cls.__name__} got unknown argument(s) {hints}; valid: {', '.join(allowed)}")
    return cls(**kwargs)


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


__all__ = ["NETWORKS", "build_network", "constructor_args", "get_network_class", "primary_output",
           "to_network_space", "from_network_space", "MIRNet_v2", "MIMOUNet", "MIMOUNetPlus", "DAE", "DAE_BN"]
