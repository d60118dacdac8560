"""Geometric self-ensemble at test time: run a network on transformed copies of the input, undo each
transform on its output, average.

- ``"rot4"``: rotations by 0, 90, 180 and 270 degrees, no flips -- MIMO-UNet++ is MIMO-UNet+ with this.
- ``"x8"``: the eight rotations and flips of the square's symmetry group (the usual "x8" ensemble).

The outputs are averaged before any clamping, so ``clip(ensemble)`` is the prediction.  Rotations by 90 and
270 degrees swap height and width; the networks here accept any size, so no padding is needed.
"""
import paddle

MODES = {"none": ((0, False),),
         "rot4": tuple((k, False) for k in range(4)),
         "x8": tuple((k, flip) for flip in (False, True) for k in range(4))}


def _forward_transform(x, k, flip):
    if flip:
        x = x.flip(axis=[3])
    return paddle.rot90(x, k, axes=[2, 3]) if k else x


def _inverse_transform(y, k, flip):
    if k:
        y = paddle.rot90(y, -k, axes=[2, 3])
    return y.flip(axis=[3]) if flip else y


def self_ensemble(forward, x, mode="rot4"):
    """Average of ``T^-1(forward(T(x)))`` over the transforms ``T`` of ``mode``.

    ``forward`` maps an NCHW tensor to an NCHW tensor of the same size (wrap a multi-output network with
    ``networks.primary_output``); ``x`` is an NCHW tensor.
    """
    if mode not in MODES:
        raise ValueError(f"unknown self-ensemble mode {mode!r}; known: {', '.join(MODES)}")
    outs = [_inverse_transform(forward(_forward_transform(x, k, flip)), k, flip) for k, flip in MODES[mode]]
    return outs[0] if len(outs) == 1 else paddle.add_n(outs) * (1.0 / len(outs))
