"""The DMSP solver: blur operator and its adjoint, sampling masks, initialisation, official PSNR, determinism,
the denoiser contract (dygraph and Paddle Inference), and quick quality checks with the official prior."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import scipy.io
import scipy.signal

from networks import DAE
from utils.checkpoint import save_weights
from utils.dmsp.solver import (
    BlurOperator,
    dmsp_restore,
    fill_missing,
    inference_denoiser,
    initial_estimate,
    layer_denoiser,
    official_psnr,
    predictor_denoiser,
    sampling_mask,
    synthesize,
)
from utils.weights.official import convert_official

from conftest import ROOT, shared_path


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("method", ["fft", "conv"])
@pytest.mark.parametrize("per_image", [False, True])
def test_blur_operator_matches_scipy_and_is_adjoint(method, per_image):
    n, h, w, kh, kw = 2, 19, 23, 5, 8
    x, r = _rand(n, 3, h, w, seed=1), _rand(n, 3, h - kh + 1, w - kw + 1, seed=2)
    k = np.abs(_rand(n, kh, kw, seed=3)) if per_image else np.abs(_rand(kh, kw, seed=3))
    op = BlurOperator(k, (h, w), method)
    kx, ktr = op.forward(paddle.to_tensor(x)).numpy(), op.adjoint(paddle.to_tensor(r)).numpy()
    for i in range(n):
        ki = k[i] if per_image else k
        for c in range(3):
            np.testing.assert_allclose(kx[i, c], scipy.signal.correlate2d(x[i, c], ki, mode="valid"), atol=1e-4)
            np.testing.assert_allclose(ktr[i, c], scipy.signal.convolve2d(r[i, c], ki, mode="full"), atol=1e-4)
    lhs, rhs = float(np.vdot(kx.astype(np.float64), r)), float(np.vdot(x.astype(np.float64), ktr))
    assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), 1.0)
    expected = (np.asarray(k, np.float64) ** 2).reshape(n if per_image else 1, -1).sum(-1)
    np.testing.assert_allclose(op.norm2.numpy().reshape(-1), expected, rtol=1e-5)


def test_blur_operator_refuses_bad_shapes():
    with pytest.raises(ValueError, match="smaller than the kernel"):
        BlurOperator(np.ones((9, 9)), (5, 20))
    with pytest.raises(ValueError, match="kernel must be"):
        BlurOperator(np.ones((1, 2, 3, 3)), (10, 10))
    op = BlurOperator(np.ones((3, 3, 3)), (10, 10), "conv")
    with pytest.raises(ValueError, match="3 kernels for a batch of 2"):
        op.forward(paddle.zeros([2, 3, 10, 10]))


def test_sampling_masks():
    m = sampling_mask((4, 6), "demosaic")
    assert m.shape == (3, 4, 6) and np.all(m.sum(0) == 1)
    assert m[0, 0, 0] == m[1, 0, 1] == m[1, 1, 0] == m[2, 1, 1] == 1  # R G / G B
    assert m[0].sum() == m[2].sum() == 6 and m[1].sum() == 12
    assert sampling_mask((4, 6), "demosaic", pattern="bggr")[2, 0, 0] == 1
    s = sampling_mask((7, 9), "sr", scale=3)
    assert s.sum() == 3 * 3 * 3 and s[:, ::3, ::3].min() == 1
    assert sampling_mask((2, 2), "deblur").min() == 1
    with pytest.raises(ValueError, match="Bayer"):
        sampling_mask((4, 4), "demosaic", pattern="RGBW")
    with pytest.raises(ValueError, match="unknown task"):
        sampling_mask((4, 4), "inpaint")


def test_fill_missing_is_the_normalised_box_average():
    y = np.abs(_rand(1, 3, 10, 12, seed=4)) * 100
    mask = sampling_mask((10, 12), "sr", 2)
    ours = fill_missing(paddle.to_tensor(y), paddle.to_tensor(mask)).numpy()[0]
    ones = np.ones((3, 3))
    for c in range(3):
        total = scipy.signal.convolve2d(y[0, c] * mask[c], ones, mode="same")
        weight = scipy.signal.convolve2d(mask[c], ones, mode="same")
        ref = y[0, c] * mask[c] + total / np.maximum(weight, 1e-5) * (1 - mask[c])
        np.testing.assert_allclose(ours[c], ref, rtol=1e-5, atol=1e-3)
    sparse = fill_missing(paddle.to_tensor(y), paddle.to_tensor(sampling_mask((10, 12), "sr", 4))).numpy()
    assert sparse.min() > 0  # x4 sampling leaves holes after one pass; the fill repeats until none is left


def test_initial_estimate_is_edge_padded():
    y = _rand(3, 6, 7, seed=5)
    x = initial_estimate(y, (5, 4)).numpy()[0]
    assert x.shape == (3, 6 + 4, 7 + 3)  # floor(k/2) on each side for odd sizes, (k-1)//2 + rest for even
    np.testing.assert_array_equal(x[:, 2:8, 1:8], y)
    np.testing.assert_array_equal(x[:, 0, 1:8], y[:, 0])
    np.testing.assert_array_equal(x[:, :, -1], x[:, :, -2])


def test_official_psnr():
    gt = np.full((3, 10, 12), 100.0)
    pred = gt.copy()
    pred[:, 0, :] = 0  # only in the cropped border
    assert official_psnr(pred, gt, (3, 3)) == np.inf
    pred[:, 5, 5] = 110.4  # rounds to 110
    mse = 3 * 10.0 ** 2 / (3 * 8 * 10)
    assert official_psnr(pred, gt, (3, 3)) == pytest.approx(20 * np.log10(255 / np.sqrt(mse)))
    assert official_psnr(pred, gt, (1, 1)) < official_psnr(pred, gt, (3, 3))
    batch = official_psnr(np.stack([pred, gt]), np.stack([gt, gt]), (3, 3))
    assert batch.shape == (2,) and batch[1] == np.inf


@pytest.fixture(scope="module")
def tiny_dae():
    paddle.seed(3)
    net = DAE(features=8, depth=3)
    return net


def _tiny_problem(n=1, seed=6):
    """Piecewise-constant sharp images [n, 3, 24, 26] (0-255), a 5 x 3 box blur, the noisy observation."""
    blocks = np.random.default_rng(seed).uniform(0, 255, (n, 3, 6, 7)).astype(np.float32)
    gt = blocks.repeat(4, axis=2).repeat(4, axis=3)[:, :, :24, :26]
    k = np.ones((5, 3), np.float32) / 15
    y, _ = synthesize(gt, "deblur", k, 2.55, seed=seed)
    return gt, k, y


def test_solver_is_deterministic_for_a_seed(tiny_dae):
    gt, k, y = _tiny_problem()
    den = layer_denoiser(tiny_dae)
    runs = [dmsp_restore(y, den, k, sigma_d=s, num_iter=4, seed=seed, progress=False).numpy()
            for s, seed in ((-1, 7), (-1, 7), (-1, 8), (2.55, 7))]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.abs(runs[0] - runs[2]).max() > 1e-3
    assert np.abs(runs[0] - runs[3]).max() > 1e-3
    assert runs[0].shape == (1, 3, 24, 26) and runs[0].min() >= 0 and runs[0].max() <= 255


def test_fft_and_direct_operators_agree(tiny_dae):
    gt, k, y = _tiny_problem()
    den = layer_denoiser(tiny_dae)
    a, b = (dmsp_restore(y, den, k, num_iter=3, seed=1, progress=False, method=m).numpy() for m in ("fft", "conv"))
    np.testing.assert_allclose(a, b, atol=2e-2)


def test_batch_with_per_image_kernels(tiny_dae):
    gt, k, y = _tiny_problem(n=2)
    k2 = np.stack([k, np.ones((5, 3), np.float32) / 15])
    out = dmsp_restore(y, layer_denoiser(tiny_dae), k2, num_iter=2, seed=0, progress=False, gt=gt)
    assert out.shape == [2, 3, 24, 26]


def test_solver_contract_errors(tiny_dae):
    gt, k, y = _tiny_problem()
    with pytest.raises(ValueError, match="denoiser returned shape"):
        dmsp_restore(y, lambda x: x[:, :, 1:], k, num_iter=1, progress=False)
    with pytest.raises(ValueError, match="mask of shape"):
        dmsp_restore(y, layer_denoiser(tiny_dae), k, mask=np.ones((3, 5, 5)), num_iter=1, progress=False)
    with pytest.raises(ValueError, match="observes no pixel"):
        dmsp_restore(y, layer_denoiser(tiny_dae), k, mask=np.zeros((3, 20, 24)), num_iter=1, progress=False)
    with pytest.raises(ValueError, match="gt of shape"):
        dmsp_restore(y, layer_denoiser(tiny_dae), k, gt=gt[:, :, 1:], num_iter=1, progress=False)
    with pytest.raises(ValueError, match="RGB image"):
        dmsp_restore(y[:, :1], layer_denoiser(tiny_dae), k, num_iter=1, progress=False)


def test_denoiser_sees_bgr_in_the_0_255_range():
    seen = []

    def probe(x):
        seen.append(x.numpy())
        return x

    gt = np.zeros((1, 3, 12, 12), np.float32)
    gt[:, 0] = 200.0  # red
    dmsp_restore(gt, probe, None, sigma_d=2.55, sigma_dae=1e-3, num_iter=1, progress=False)
    assert seen[0].shape == (1, 3, 12, 12)
    assert seen[0][0, 2].mean() == pytest.approx(200.0, abs=0.1) and abs(seen[0][0, 0].mean()) < 0.1


def test_static_inference_dae_drives_the_solver_like_dygraph(tiny_dae):
    """The DAE exported with paddle.jit.save and run by a Paddle Inference predictor gives the solver the
    same result as the dygraph network, for a fixed seed."""
    gt, k, y = _tiny_problem(n=2)
    a = dmsp_restore(y, layer_denoiser(tiny_dae), k, sigma_d=-1, num_iter=5, seed=3, progress=False).numpy()
    b = dmsp_restore(y, inference_denoiser(tiny_dae, threads=1), k, sigma_d=-1, num_iter=5, seed=3,
                     progress=False).numpy()
    np.testing.assert_allclose(a, b, atol=1e-2)


LEGACY_EXPORT = """
import sys, paddle
from networks import DAE
from utils.checkpoint import load_weights
net = load_weights(DAE(features=8, depth=3), sys.argv[1])
net.eval()
paddle.jit.save(net, sys.argv[2], input_spec=[paddle.static.InputSpec([None, 3, None, None], 'float32', 'x')])
"""


def test_legacy_static_export_drives_the_solver_like_dygraph(tiny_dae, tmp_path):
    """The legacy .pdmodel export (FLAGS_enable_pir_api=0) run by its own Paddle Inference predictor."""
    from paddle import inference

    save_weights(tiny_dae, str(tmp_path / "dae.pdparams"))
    env = dict(os.environ, FLAGS_enable_pir_api="0", PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", LEGACY_EXPORT, str(tmp_path / "dae.pdparams"),
                          str(tmp_path / "inference")], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    config = inference.Config(str(tmp_path / "inference.pdmodel"), str(tmp_path / "inference.pdiparams"))
    config.disable_glog_info()
    config.set_cpu_math_library_num_threads(1)
    config.disable_mkldnn()  # oneDNN is faster but builds its kernels slowly: the contract is what matters here
    config.enable_memory_optim()
    static = predictor_denoiser(inference.create_predictor(config))
    gt, k, y = _tiny_problem()
    a = dmsp_restore(y, layer_denoiser(tiny_dae), k, sigma_d=2.55, num_iter=5, seed=4, progress=False).numpy()
    b = dmsp_restore(y, static, k, sigma_d=2.55, num_iter=5, seed=4, progress=False).numpy()
    np.testing.assert_allclose(a, b, atol=1e-2)


# ---- with the official prior (small crops, few iterations; the full 300-iteration checks are marked slow)


@pytest.fixture(scope="module")
def official():
    net = DAE()
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in
                        convert_official("DAE", shared_path("data", "dmsp", "DAE_sigma11.mat")).items()})
    img = cv2.imread(shared_path("data", "dmsp", "101085.jpg"))[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
    kernel = scipy.io.loadmat(shared_path("data", "dmsp", "kernels.mat"))["kernels"][0, 0]
    return inference_denoiser(net), img, (kernel / kernel.sum()).astype(np.float32)


def _crop(img, size):
    top, left = (img.shape[1] - size) // 2, (img.shape[2] - size) // 2
    return np.ascontiguousarray(img[None, :, top:top + size, left:left + size])


@pytest.mark.parametrize("sigma_d", [2.55, -1.0])
def test_deblurring_improves_psnr(official, sigma_d):
    den, img, k = official
    gt = _crop(img, 64)
    y, _ = synthesize(gt, "deblur", k, 2.55, seed=0)
    start = official_psnr(initial_estimate(y, k.shape)[0], gt[0], k.shape)  # 22.26 dB
    out = dmsp_restore(y, den, k, sigma_d=sigma_d, num_iter=30, seed=1, progress=False)
    assert official_psnr(out[0], gt[0], k.shape) >= start + 1.5  # measured +2.07 (non-blind), +2.11 (blind)


@pytest.mark.parametrize("task", ["sr", "demosaic"])
def test_masked_tasks_improve_over_their_start(official, task):
    den, img, k = official
    gt = _crop(img, 48)
    kernel = None if task == "demosaic" else cv2.getGaussianKernel(5, 0.8) @ cv2.getGaussianKernel(5, 0.8).T
    y, mask = synthesize(gt, task, kernel, 2.55, scale=2, seed=0)
    shape = (1, 1) if kernel is None else kernel.shape
    start = official_psnr(initial_estimate(y, shape, mask)[0], gt[0], shape)
    out = dmsp_restore(y, den, kernel, mask, sigma_d=2.55, num_iter=30, seed=1, progress=False)
    assert official_psnr(out[0], gt[0], shape) >= start + 0.4  # measured +0.70 (x2 SR), +0.90 (demosaicing)
