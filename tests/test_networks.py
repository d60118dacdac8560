"""Network tests, parametrized over the registry: official key lists, parameter counts, any-size forward."""
import os

import numpy as np
import paddle
import pytest
import yaml

from networks import NETWORKS, build_network, constructor_args, primary_output

from conftest import shared_path

# name -> (tiny test config, official key list file, official parameter count)
OFFICIAL = {
    "MIRNet_v2": ("mirnet_v2_official_keys.txt", 5_858_560),
    "MIMOUNet": ("mimo_unet_official_keys.txt", 6_807_171),
    "MIMOUNetPlus": ("mimo_unet_plus_official_keys.txt", 16_107_651),
}
TINY = {
    "MIRNet_v2": {"n_feat": 16, "n_MRB": 1},
    "MIMOUNet": {"num_res": 1},
    "MIMOUNetPlus": {"num_res": 1},
    "DAE": {"features": 8, "depth": 4},
    "DAE_BN": {"features": 8, "depth": 4},
}


def save_tiny_network(folder, name, **changes):
    """Seeded tiny network of ``name`` (its TINY config updated with ``changes``), its weights in ``folder`` and a
    config.yml beside them, as training writes them.  Returns (weights path, network in eval mode)."""
    paddle.seed(0)
    cfg = {"name": name, **TINY[name], **changes}
    net = build_network(cfg)
    net.eval()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "weights.pdparams")
    paddle.save(net.state_dict(), path)
    with open(os.path.join(folder, "config.yml"), "w") as f:
        yaml.safe_dump({"network": cfg}, f)
    return path, net


def official_keys(filename):
    lines = open(shared_path("reference", filename)).read().split("\n")
    out = []
    for line in filter(None, lines):
        key, shape = line.split(" ", 1)
        out.append((key, [int(s) for s in shape.strip("[]").split(",") if s.strip()]))
    return out


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_state_dict_matches_official(name):
    keys_file, n_params = OFFICIAL[name]
    net = build_network({"name": name})
    ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert ours == official_keys(keys_file)
    assert sum(p.numel().item() for p in net.parameters()) == n_params


def test_every_registered_network_has_tests():
    assert set(NETWORKS) <= set(TINY)


def test_mirnet_tiny_parameter_count():
    net = build_network({"name": "MIRNet_v2", **TINY["MIRNet_v2"]})
    assert sum(p.numel().item() for p in net.parameters()) == 123_472


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("shape", [(1, 3, 61, 97), (2, 3, 64, 64), (1, 3, 1, 1), (1, 3, 5, 2)])
def test_forward_any_size(name, shape):
    net = build_network({"name": name, **TINY[name]})
    net.eval()
    out = primary_output(net(paddle.rand(shape)))
    assert list(out.shape) == list(shape)
    assert bool(paddle.isfinite(out).all())


@pytest.mark.parametrize("name", sorted(TINY))
def test_batch_equals_single_images(name):
    net = build_network({"name": name, **TINY[name]})
    net.eval()
    x = paddle.rand([2, 3, 24, 20])
    batched = primary_output(net(x)).numpy()
    single = np.concatenate([primary_output(net(x[i:i + 1])).numpy() for i in range(2)])
    np.testing.assert_allclose(batched, single, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY))
def test_backward_reaches_every_parameter(name):
    net = build_network({"name": name, **TINY[name]})
    net.train()
    out = net(paddle.rand([2, 3, 32, 36]))
    outs = out if isinstance(out, (list, tuple)) else [out]
    paddle.add_n([o.abs().mean() for o in outs]).backward()
    trainable = [(n, p) for n, p in net.named_parameters() if not p.stop_gradient]  # not BatchNorm statistics
    missing = [n for n, p in trainable if p.grad is None or not bool(paddle.isfinite(p.grad).all())]
    assert not missing


def test_odd_size_is_edge_padded_then_cropped():
    """An odd-sized input gives the crop of the output on its edge-padded, aligned version."""
    net = build_network({"name": "MIRNet_v2", **TINY["MIRNet_v2"]})
    net.eval()
    x = paddle.rand([1, 3, 33, 31])
    padded = paddle.nn.functional.pad(x, [0, 1, 0, 3], mode="replicate")  # to 36 x 32
    np.testing.assert_allclose(net(x).numpy(), net(padded).numpy()[:, :, :33, :31], atol=1e-6)


def test_init_matches_pytorch_default_and_is_local():
    net = build_network({"name": "MIRNet_v2"})
    w = net.conv_in.weight.numpy()  # fan_in 27: PyTorch default is U(-1/sqrt(27), 1/sqrt(27))
    assert np.abs(w).max() <= 1 / np.sqrt(27) + 1e-7
    assert np.abs(w).max() > 0.9 / np.sqrt(27)
    fresh = paddle.nn.Conv2D(80, 80, 3)  # Paddle's own default (normal, std sqrt(2 / 720)) is untouched
    assert fresh.weight.numpy().std() == pytest.approx(np.sqrt(2 / 720), rel=0.05)


@pytest.mark.parametrize("bad", [{"height": 4}, {"scale": 2}, {"task": "deraining"}])
def test_mirnet_refuses_unsupported_arguments(bad):
    with pytest.raises(ValueError):
        build_network({"name": "MIRNet_v2", **bad})


def test_registry_errors():
    with pytest.raises(KeyError, match="MIRNet_v2"):
        build_network({"name": "MIRNet_V2x"})
    with pytest.raises(TypeError, match="n_feat"):
        build_network({"name": "MIRNet_v2", "n_feats": 16})
    with pytest.raises(ValueError):
        build_network({"n_feat": 16})
    assert constructor_args(NETWORKS["MIRNet_v2"])["n_feat"] == 80


def test_primary_output():
    a, b = paddle.zeros([1]), paddle.ones([1])
    assert primary_output([a, b]) is b
    assert primary_output(a) is a
