"""The denoising autoencoder (DAE) prior of DMSP (Bigdeli et al., "Deep Mean-Shift Priors for Image
Restoration", NIPS 2017).

A DnCNN-style residual denoiser: ``out = in + net(in)`` where ``net`` is ``depth`` 3 x 3 convolutions
(stride 1, padding 1) with a ReLU between consecutive ones.  It works on BGR images in [0, 255] (no mean
subtraction) and the official network was trained at Gaussian noise sigma 11 on that scale.

Two forms share the layer names of the official MatConvNet file (``conv1`` ... ``conv20``):

- ``DAE``: the deployable network, every convolution with a bias (BatchNorm already folded in).  This is what
  ``DAE_sigma11.mat`` holds.  State-dict keys: ``conv{i}.weight`` (OIHW) and ``conv{i}.bias`` for
  i = 1 .. depth; 668,227 parameters at the defaults.
- ``DAE_BN``: the trainable network: ``conv1`` (bias) + ReLU, then ``conv{i}`` (no bias) + ``bn{i}`` + ReLU for
  i = 2 .. depth - 1, then ``conv{depth}`` (bias).  ``DAE_BN.fold()`` returns the equivalent ``DAE`` (eval-mode
  BatchNorm statistics folded into weights and biases), ``fold_state_dict`` does the same on a state dict.
"""

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn


class _DAEBase(nn.Layer):
    size_multiple = 1
    input_range = (0.0, 255.0)
    channel_order = "BGR"
    restoration_task = "dmsp_prior"  # a denoiser of Gaussian noise, the prior of the DMSP solver

    def _check(self, in_channels, features, depth):
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        if in_channels < 1 or features < 1:
            raise ValueError(f"in_channels and features must be positive, got {in_channels}, {features}")
        self.in_channels, self.features, self.depth = in_channels, features, depth

    def _channels(self, i):
        """(in, out) channels of convolution ``i`` (1-based)."""
        cin = self.in_channels if i == 1 else self.features
        cout = self.in_channels if i == self.depth else self.features
        return cin, cout


class DAE(_DAEBase):
    """Deployable DAE: ``depth`` biased 3 x 3 convolutions with ReLUs, plus the input (residual)."""

    def __init__(self, in_channels=3, features=64, depth=20):
        super().__init__()
        self._check(in_channels, features, depth)
        for i in range(1, depth + 1):
            setattr(self, f"conv{i}", nn.Conv2D(*self._channels(i), 3, padding=1))

    def forward(self, x):
        y = x
        for i in range(1, self.depth + 1):
            y = getattr(self, f"conv{i}")(y)
            if i < self.depth:
                y = F.relu(y)
        return x + y

    @staticmethod
    def config_from_state_dict(state):
        """The config of a folded DAE file of any size (no config.yml needed), or None: see ``dae_config``."""
        return dae_config(state)


class DAE_BN(_DAEBase):
    """Trainable DAE with BatchNorm after every inner convolution; ``fold()`` gives the deployable ``DAE``."""

    def __init__(self, in_channels=3, features=64, depth=20, bn_momentum=0.9, bn_epsilon=1e-5):
        super().__init__()
        self._check(in_channels, features, depth)
        self.bn_epsilon = bn_epsilon
        for i in range(1, depth + 1):
            inner = 1 < i < depth
            # DnCNN initialisation: He-normal convolutions (fan-in, ReLU gain), zero biases, unit BN scales
            he = paddle.ParamAttr(initializer=nn.initializer.KaimingNormal(nonlinearity="relu"))
            zero = False if inner else paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
            setattr(self, f"conv{i}", nn.Conv2D(*self._channels(i), 3, padding=1, weight_attr=he, bias_attr=zero))
            if inner:
                setattr(self, f"bn{i}", nn.BatchNorm2D(features, momentum=bn_momentum, epsilon=bn_epsilon))

    def forward(self, x):
        y = x
        for i in range(1, self.depth + 1):
            y = getattr(self, f"conv{i}")(y)
            if 1 < i < self.depth:
                y = getattr(self, f"bn{i}")(y)
            if i < self.depth:
                y = F.relu(y)
        return x + y

    def fold(self):
        """The deployable ``DAE`` computing what this network computes in eval mode."""
        dae = DAE(self.in_channels, self.features, self.depth)
        dae.set_state_dict({k: paddle.to_tensor(v) for k, v in fold_state_dict(self.state_dict(), self.depth,
                                                                                 self.bn_epsilon).items()})
        return dae


def _np(v):
    return v.numpy() if hasattr(v, "numpy") else np.asarray(v)


def fold_state_dict(state, depth=None, epsilon=1e-5):
    """Fold a ``DAE_BN`` state dict into a ``DAE`` one (float32 numpy arrays).

    For ``conv{i}`` followed by ``bn{i}``: w' = w * g / sqrt(v + eps) per output channel and
    b' = beta - m * g / sqrt(v + eps) (the inner convolutions have no bias).  ``depth`` defaults to the number
    of ``conv{i}.weight`` keys.
    """
    state = {k: _np(v).astype(np.float64) for k, v in state.items()}
    if depth is None:
        depth = sum(1 for k in state if k.startswith("conv") and k.endswith(".weight"))
    out = {}
    for i in range(1, depth + 1):
        w = state[f"conv{i}.weight"]
        if 1 < i < depth:
            g, beta = state[f"bn{i}.weight"], state[f"bn{i}.bias"]
            mean, var = state[f"bn{i}._mean"], state[f"bn{i}._variance"]
            scale = g / np.sqrt(var + epsilon)
            bias = state.get(f"conv{i}.bias", np.zeros_like(mean))
            w, b = w * scale[:, None, None, None], (bias - mean) * scale + beta
        else:
            b = state[f"conv{i}.bias"]
        out[f"conv{i}.weight"], out[f"conv{i}.bias"] = w.astype(np.float32), b.astype(np.float32)
    return out


def dae_config(state):
    """The ``DAE`` network config ({name, in_channels, features, depth}) that fits a state dict, or None: a
    folded file of any size describes itself, with no config.yml beside it."""
    depth = sum(1 for k in state if k.startswith("conv") and k.endswith(".weight"))
    if depth < 2 or set(state) != {f"conv{i}.{p}" for i in range(1, depth + 1) for p in ("weight", "bias")}:
        return None
    shape = lambda k: tuple(int(d) for d in state[k].shape)  # noqa: E731
    cfg = {"name": "DAE", "in_channels": shape("conv1.weight")[1], "features": shape("conv1.weight")[0],
           "depth": depth}
    for i in range(1, depth + 1):
        cin = cfg["in_channels"] if i == 1 else cfg["features"]
        cout = cfg["in_channels"] if i == depth else cfg["features"]
        if shape(f"conv{i}.weight") != (cout, cin, 3, 3) or shape(f"conv{i}.bias") != (cout,):
            return None
    return cfg
