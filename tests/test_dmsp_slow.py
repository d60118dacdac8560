"""Full-quality DMSP checks with the official prior (300 iterations each; run with ``pytest -m slow``).

128 x 128 centre crop of 101085.jpg, the first official kernel, noise sigma 2.55: the official loop reaches
24.80 dB (non-blind) and 24.77 dB (noise-blind) from 19.63 dB; noise realisations move this by about 0.15 dB.
"""
import cv2
import numpy as np
import paddle
import pytest
import scipy.io

from networks import DAE
from utils.dmsp.solver import dmsp_restore, inference_denoiser, initial_estimate, official_psnr, synthesize
from utils.weights.official import convert_official

from conftest import shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def problem():
    net = DAE()
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in
                        convert_official("DAE", shared_path("data", "dmsp", "DAE_sigma11.mat")).items()})
    img = cv2.imread(shared_path("data", "dmsp", "101085.jpg"))[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
    top, left = (img.shape[1] - 128) // 2, (img.shape[2] - 128) // 2
    gt = np.ascontiguousarray(img[None, :, top:top + 128, left:left + 128])
    k = scipy.io.loadmat(shared_path("data", "dmsp", "kernels.mat"))["kernels"][0, 0]
    k = (k / k.sum()).astype(np.float32)
    y, _ = synthesize(gt, "deblur", k, 2.55, seed=0)
    return inference_denoiser(net), gt, k, y


@pytest.mark.parametrize("sigma_d, target", [(2.55, 24.65), (-1.0, 24.6)])
def test_deblurring_reaches_the_official_quality(problem, sigma_d, target):
    den, gt, k, y = problem
    assert official_psnr(initial_estimate(y, k.shape)[0], gt[0], k.shape) == pytest.approx(19.63, abs=0.05)
    out = dmsp_restore(y, den, k, sigma_d=sigma_d, num_iter=300, seed=1, progress=False)
    assert official_psnr(out[0], gt[0], k.shape) >= target
