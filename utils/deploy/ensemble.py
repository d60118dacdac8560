"""Geometric self-ensemble at test time: run a network on transformed copies of the input, undo each
transform on its output, average.

- ``"rot4"``: rotations by 0, 90, 180 and 270 degrees, no flips -- MIMO-UNet++ is MIMO-UNet+ with this.
- ``"x8"``: the eight rotations and flips of the square's symmetry group (the usual "x8" ensemble).

The outputs are averaged before any clamping, so ``clip(ensemble)`` is the prediction.  Rotations by 90 and
270 degrees swap height and width; the networks here accept any size, so no padding is needed.  The same code
serves NCHW numpy arrays (``EnsembleRunner`` around any runner, exported models included) and paddle tensors.
"""
import numpy as np

MODES = {"none": ((0, False),),
         "rot4": tuple((k, False) for k in range(4)),
         "x8": tuple((k, flip) for flip in (False, True) for k in range(4))}


def _rot90(x, k):
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(np.rot90(x, k, axes=(2, 3)))
    import paddle

    return paddle.rot90(x, k, axes=[2, 3])


def _flip(x):
    return np.ascontiguousarray(x[:, :, :, ::-1]) if isinstance(x, np.ndarray) else x.flip(axis=[3])


def _forward_transform(x, k, flip):
    if flip:
        x = _flip(x)
    return _rot90(x, k) if k else x


def _inverse_transform(y, k, flip):
    if k:
        y = _rot90(y, -k)
    return _flip(y) if flip else y


def self_ensemble(forward, x, mode="rot4"):
    """Average of ``T^-1(forward(T(x)))`` over the transforms ``T`` of ``mode``.

    ``forward`` maps an NCHW array or tensor to one of the same kind and size (wrap a multi-output network with
    ``networks.primary_output``); ``x`` is an NCHW numpy array or paddle tensor.
    """
    if mode not in MODES:
        raise ValueError(f"unknown self-ensemble mode {mode!r}; known: {', '.join(MODES)}")
    outs = [_inverse_transform(forward(_forward_transform(x, k, flip)), k, flip) for k, flip in MODES[mode]]
    if len(outs) == 1:
        return outs[0]
    if isinstance(x, np.ndarray):
        return np.sum(outs, axis=0, dtype=np.float32) * np.float32(1.0 / len(outs))
    import paddle

    return paddle.add_n(outs) * (1.0 / len(outs))


class EnsembleRunner:
    """A runner (see runners.py) that self-ensembles another one."""

    def __init__(self, run, mode="rot4"):
        if mode not in MODES:
            raise ValueError(f"unknown self-ensemble mode {mode!r}; known: {', '.join(MODES)}")
        self.run, self.mode = run, mode
        self.size_multiple = getattr(run, "size_multiple", 1)
        self.model_name, self.device = getattr(run, "model_name", "model"), getattr(run, "device", "cpu")
        self.task = getattr(run, "task", None)
        self.description = getattr(run, "description", "runner") + (f", self-ensemble {mode}" if mode != "none"
                                                                     else "")

    def __call__(self, batch):
        return self_ensemble(self.run, np.ascontiguousarray(batch, dtype=np.float32), self.mode)
