"""The DMSP denoiser: official .mat conversion, its denoising quality, BatchNorm folding, bad weight files."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import scipy.io

from networks import DAE, DAE_BN, build_network
from networks.dmsp import fold_state_dict
from utils.checkpoint import WeightsError, load_weights, save_weights
from utils.dmsp.solver import inference_denoiser
from utils.weights.official import convert_official, read_matconvnet_dae

from conftest import ROOT, shared_path

CONVERT = [sys.executable, os.path.join(ROOT, "tools", "convert_weights.py")]
FOLD = [sys.executable, os.path.join(ROOT, "tools", "fold_dae.py")]


@pytest.fixture(scope="module")
def official_dae():
    net = DAE()
    state = convert_official("DAE", shared_path("data", "dmsp", "DAE_sigma11.mat"))
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    net.eval()
    return net


def test_dae_keys_and_parameter_count():
    net = DAE()
    keys = list(net.state_dict())
    assert keys == [f"conv{i}.{p}" for i in range(1, 21) for p in ("weight", "bias")]
    assert sum(p.numel().item() for p in net.parameters()) == 668_227
    assert (DAE.size_multiple, DAE.input_range, DAE.channel_order) == (1, (0.0, 255.0), "BGR")


def _official_tf1_forward(mat_path, bgr):
    """The official TF1 DAE in numpy: HWIO kernels = W.transpose(1, 0, 2, 3), 'SAME' correlation, bias, ReLU
    between layers, plus the input.  ``bgr`` is H x W x 3."""
    layers = scipy.io.loadmat(mat_path)["net"].reshape(-1)
    x = bgr.astype(np.float64)
    for i, layer in enumerate(layers[::2]):
        w, b = layer[0, 0]["weights"][0]
        hwio = np.transpose(w, (1, 0, 2, 3))
        padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        h, wd = x.shape[:2]
        out = np.zeros((h, wd, hwio.shape[3]))
        for dy in range(3):
            for dx in range(3):
                out += padded[dy:dy + h, dx:dx + wd] @ hwio[dy, dx]
        x = out + b.reshape(-1)
        if i < len(layers) // 2:
            x = np.maximum(x, 0)
    return bgr + x


def test_converted_dae_equals_official_tf1_computation(official_dae):
    img = cv2.imread(shared_path("data", "dmsp", "101085.jpg"))[100:111, 200:213].astype(np.float64)
    ref = _official_tf1_forward(shared_path("data", "dmsp", "DAE_sigma11.mat"), img)
    with paddle.no_grad():
        ours = official_dae(paddle.to_tensor(img.transpose(2, 0, 1)[None].astype(np.float32))).numpy()[0]
    np.testing.assert_allclose(ours.transpose(1, 2, 0), ref, atol=2e-3)


def test_official_dae_denoises_101085(official_dae):
    """101085.jpg + N(0, 11^2): about 27.3-27.5 dB before, 33.1 dB after one pass (official: 27.45 -> 33.09).

    The whole image goes through the Paddle Inference predictor of the converted network (dygraph convolutions
    are slow on the CPU); the test above checks the dygraph network against the official computation."""
    gt = cv2.imread(shared_path("data", "dmsp", "101085.jpg")).astype(np.float32)  # BGR, as the DAE expects
    noisy = gt + np.random.default_rng(0).normal(0.0, 11.0, gt.shape).astype(np.float32)
    out = inference_denoiser(official_dae)(paddle.to_tensor(noisy.transpose(2, 0, 1)[None]))
    out = out.numpy()[0].transpose(1, 2, 0)

    def psnr(a):
        return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - gt) ** 2))

    assert 27.0 < psnr(noisy) < 27.7
    assert psnr(out) >= 33.0


def test_convert_weights_cli(tmp_path):
    dst = tmp_path / "dae.pdparams"
    res = subprocess.run(CONVERT + ["--arch", "DAE", "--src", shared_path("data", "dmsp", "DAE_sigma11.mat"),
                                    "--dst", str(dst)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "668,227 parameters" in res.stdout
    net = load_weights(DAE(), str(dst))
    ref = read_matconvnet_dae(shared_path("data", "dmsp", "DAE_sigma11.mat"))
    np.testing.assert_array_equal(net.conv7.weight.numpy(), ref["conv7.weight"].astype(np.float32))
    np.testing.assert_array_equal(net.conv20.bias.numpy(), ref["conv20.bias"].astype(np.float32))


def test_other_mat_files_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="no 'net' variable.*kernels"):
        read_matconvnet_dae(shared_path("data", "dmsp", "kernels.mat"))
    fake = tmp_path / "fake.mat"
    fake.write_text("not a MATLAB file")
    with pytest.raises(WeightsError, match="cannot read"):
        read_matconvnet_dae(str(fake))
    pool = tmp_path / "pool.mat"
    layers = np.empty((1, 1), dtype=object)
    layers[0, 0] = {"type": "pool", "name": "pool1"}
    scipy.io.savemat(str(pool), {"net": layers})
    with pytest.raises(WeightsError, match="type 'pool'"):
        read_matconvnet_dae(str(pool))
    res = subprocess.run(CONVERT + ["--arch", "DAE", "--src", shared_path("data", "dmsp", "kernels.mat"),
                                    "--dst", str(tmp_path / "x.pdparams")], capture_output=True, text=True)
    assert res.returncode != 0
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "x.pdparams").exists()


def test_wrong_depth_mat_is_refused(tmp_path):
    """A MatConvNet net of another shape converts to keys that do not fit the DAE."""
    rng = np.random.default_rng(0)

    def cell(*items):
        out = np.empty((1, len(items)), dtype=object)
        for i, item in enumerate(items):
            out[0, i] = item
        return out

    def conv(name, cin, cout):
        return {"type": "conv", "name": name,
                "weights": cell(rng.standard_normal((3, 3, cin, cout)), rng.standard_normal((cout, 1)))}

    path = tmp_path / "small.mat"
    scipy.io.savemat(str(path), {"net": cell(conv("conv1", 3, 8), {"type": "relu", "name": "relu1"},
                                             conv("conv2", 8, 3))})
    state = read_matconvnet_dae(str(path))
    assert sorted(state) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight"]
    assert state["conv1.weight"].shape == (8, 3, 3, 3)
    np.testing.assert_array_equal(convert_official("DAE", str(path), {"features": 8, "depth": 2})["conv2.bias"],
                                  state["conv2.bias"].astype(np.float32))
    with pytest.raises(WeightsError, match="missing"):
        convert_official("DAE", str(path))


def _randomise_bn(net, seed=0):
    rng = np.random.default_rng(seed)
    for name, p in net.named_parameters():
        if ".bias" in name or name.startswith("bn"):
            shape = p.shape
            value = rng.uniform(0.5, 2.0, shape) if name.endswith(("_variance", ".weight")) and "bn" in name \
                else rng.normal(0, 0.5, shape)
            p.set_value(paddle.to_tensor(value.astype(np.float32)))


def test_bn_folding_is_exact():
    net = DAE_BN(features=16, depth=6)
    _randomise_bn(net)
    net.eval()
    folded = net.fold()
    x = paddle.rand([2, 3, 23, 17])
    with paddle.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), net(x).numpy(), atol=1e-4)
        big, ref = folded(x * 255).numpy(), net(x * 255).numpy()  # the DAE's own range: float32-relative
    assert np.abs(big - ref).max() <= 1e-5 * np.abs(ref).max()
    assert list(folded.state_dict()) == [f"conv{i}.{p}" for i in range(1, 7) for p in ("weight", "bias")]


def test_default_dae_bn_folds_into_the_official_layout():
    net = DAE_BN()
    _randomise_bn(net, seed=1)
    state = fold_state_dict(net.state_dict())
    assert {k: list(v.shape) for k, v in state.items()} == {k: list(v.shape) for k, v in DAE().state_dict().items()}


def test_fold_cli(tmp_path):
    net = build_network({"name": "DAE_BN", "features": 8, "depth": 4})
    _randomise_bn(net, seed=2)
    src, dst = tmp_path / "trained.pdparams", tmp_path / "dae.pdparams"
    save_weights(net, str(src))
    res = subprocess.run(FOLD + ["--src", str(src), "--dst", str(dst), "-o", "features=8", "-o", "depth=4"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    folded = load_weights(DAE(features=8, depth=4), str(dst))
    net.eval()
    folded.eval()
    x = paddle.rand([1, 3, 9, 12])
    with paddle.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), net(x).numpy(), atol=1e-4)
    res = subprocess.run(FOLD + ["--src", str(dst), "--dst", str(tmp_path / "again.pdparams")],
                         capture_output=True, text=True)
    assert res.returncode != 0 and res.stderr.startswith("error:") and "DAE_BN" in res.stderr
