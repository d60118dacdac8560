"""Parameter and multiply-accumulate counts per network, counted with forward hooks.

``paddle.flops`` fails on MIRNetV2 (its context blocks and shared-weight branches), so every ``Conv2D``,
``Conv2DTranspose`` and ``Linear`` layer gets a forward post-hook that adds its multiply-accumulates for the
shapes it actually saw; a layer called twice (MIRNetV2 reuses its context and fusion blocks) counts twice.
Per batch element:

- Conv2D: Cout * Hout * Wout * (Cin / groups) * kh * kw
- Conv2DTranspose: Cin * Hin * Win * (Cout / groups) * kh * kw (every input pixel scatters one kernel)
- Linear: in_features * out_features per row

Bias additions, activations, pooling, interpolation and element-wise products are not counted (the
convention of the official papers' "GMACs").  The count runs one forward pass at the requested size under
``paddle.no_grad`` with the network's own padding to its size multiple.
"""
import numpy as np
import paddle
from paddle import nn

from networks import build_network

from ..checkpoint import INPUT_CHANNEL_KEYS


def _prod(shape):
    return int(np.prod([int(s) for s in shape]))


def _layer_macs(layer, inputs, output):
    x = inputs[0]
    if isinstance(layer, nn.Conv2DTranspose):
        cin, cout = int(layer.weight.shape[0]), int(layer.weight.shape[1])  # [in, out / groups, kh, kw]
        return _prod(x.shape[2:]) * cin * cout * _prod(layer.weight.shape[2:])
    if isinstance(layer, nn.Conv2D):
        cout, cin_g = int(layer.weight.shape[0]), int(layer.weight.shape[1])  # [out, in / groups, kh, kw]
        return _prod(output.shape[2:]) * cout * cin_g * _prod(layer.weight.shape[2:])
    if isinstance(layer, nn.Linear):
        return _prod(x.shape[1:-1]) * _prod(layer.weight.shape)
    return 0


def count_macs(net, height, width, channels=3):
    """Multiply-accumulates of one forward pass of ``net`` on a 1 x channels x height x width input."""
    total = [0]

    def hook(layer, inputs, output):
        total[0] += _layer_macs(layer, inputs, output)

    handles = [layer.register_forward_post_hook(hook) for layer in net.sublayers()
               if isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose, nn.Linear))]
    try:
        net.eval()
        with paddle.no_grad():
            net(paddle.zeros([1, channels, int(height), int(width)]))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def macs_at(net, height, width, channels=3):
    """``count_macs`` at any size without a forward pass at that size (the benchmark asks for 1024 x 1024 and
    4000 x 3000).  The network pads its input to its size multiple m, and then every layer either scales with the
    padded pixel count (convolutions at a fixed fraction of the resolution) or does not depend on it (layers
    after global pooling): the count is a + b * pixels, fitted exactly from two small sizes."""
    m = max(int(getattr(net, "size_multiple", 1)), 1)
    small, large = 8 * m, 16 * m
    a_small, a_large = count_macs(net, small, small, channels), count_macs(net, large, large, channels)
    per_pixel = (a_large - a_small) / float(large * large - small * small)
    pixels = (-(-int(height) // m) * m) * (-(-int(width) // m) * m)
    return int(round(a_small + per_pixel * (pixels - small * small)))


def count_parameters(net):
    return sum(_prod(p.shape) for p in net.parameters())


def model_card(cfg, sizes=((256, 256), (720, 1280))):
    """{'model', 'params', 'gmacs': {'HxW': GMACs}} for the network config ``cfg`` (a dict with 'name')."""
    paddle.seed(0)
    net = build_network(dict(cfg))
    channels = next((int(cfg[k]) for k in INPUT_CHANNEL_KEYS if k in cfg), 3)
    gmacs = {f"{h}x{w}": round(count_macs(net, h, w, channels) / 1e9, 3) for h, w in sizes}
    return {"model": cfg["name"], "params": count_parameters(net), "gmacs": gmacs}


def card_table(cards):
    """Markdown table of model cards."""
    sizes = list(cards[0]["gmacs"]) if cards else []
    head = "| model | parameters | " + " | ".join(f"GMACs at {s.replace('x', ' x ')}" for s in sizes) + " |"
    rows = [head, "|---|---:|" + "---:|" * len(sizes)]
    for c in cards:
        rows.append(f"| {c['model']} | {c['params']:,} | " + " | ".join(f"{c['gmacs'][s]:.1f}" for s in sizes) + " |")
    return "\n".join(rows)
