"""Metrics against scikit-image (PSNR, Gaussian SSIM) and an independent volumetric SSIM (MATLAB style)."""
import numpy as np
import paddle
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from utils.metrics import psnr, ssim, ssim_matlab


def _pairs():
    rng = np.random.RandomState(1)
    out = []
    for img in (data.astronaut()[:96, :120], data.coffee()[50:130, 100:190], data.chelsea()[:64, :64]):
        clean = img.astype(np.float64) / 255
        for sigma in (0.02, 0.1):
            noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1)
            out.append((noisy, clean))
    return out


def _chw(x):
    return x.transpose(2, 0, 1)


@pytest.mark.parametrize("idx", range(6))
def test_psnr_and_ssim_match_skimage(idx):
    noisy, clean = _pairs()[idx]
    ref_psnr = peak_signal_noise_ratio(clean, noisy, data_range=1)
    ref_ssim = structural_similarity(clean, noisy, data_range=1, channel_axis=-1, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert psnr(_chw(noisy), _chw(clean)) == pytest.approx(ref_psnr, abs=1e-9)
    assert ssim(_chw(noisy), _chw(clean)) == pytest.approx(ref_ssim, abs=1e-9)


def test_grayscale_matches_skimage():
    clean = data.camera()[:80, :100].astype(np.float64) / 255
    noisy = np.clip(clean + np.random.RandomState(2).normal(0, 0.05, clean.shape), 0, 1)
    assert ssim(noisy, clean) == pytest.approx(
        structural_similarity(clean, noisy, data_range=1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False), abs=1e-9)


def test_batched_numpy_and_paddle():
    pairs = _pairs()[:2]
    a = np.stack([_chw(n) for n, _ in pairs]).astype(np.float32)
    b = np.stack([_chw(c) for _, c in pairs]).astype(np.float32)
    batch = psnr(a, b)
    assert batch.shape == (2,)
    assert batch[1] == pytest.approx(psnr(a[1], b[1]))
    np.testing.assert_allclose(psnr(paddle.to_tensor(a), paddle.to_tensor(b)), batch, rtol=1e-12)
    np.testing.assert_allclose(ssim(paddle.to_tensor(a), paddle.to_tensor(b)), ssim(a, b), rtol=1e-12)
    assert ssim(a, b).shape == (2,) and ssim_matlab(a, b).shape == (2,)


def _gauss3(sigma=1.5, radius=5):
    x = np.arange(-radius, radius + 1)
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    return g[:, None, None] * g[None, :, None] * g[None, None, :]


def _brute_volumetric_ssim(a, b):
    """MATLAB ssim on H x W x 3: 11^3 Gaussian window, replicate padding, mean over all voxels."""
    k = _gauss3()

    def filt(v):
        p = np.pad(v, 5, mode="edge")
        out = np.zeros_like(v)
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                for c in range(v.shape[2]):
                    out[i, j, c] = (p[i:i + 11, j:j + 11, c:c + 11] * k).sum()
        return out

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = filt(a), filt(b)
    vx, vy, vxy = filt(a * a) - mx ** 2, filt(b * b) - my ** 2, filt(a * b) - mx * my
    return (((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean()


def test_matlab_ssim_is_volumetric():
    noisy, clean = _pairs()[1]
    noisy, clean = noisy[:20, :24], clean[:20, :24]
    ours = ssim_matlab(_chw(noisy), _chw(clean))
    assert ours == pytest.approx(_brute_volumetric_ssim(noisy, clean), abs=1e-12)
    assert abs(ours - ssim(_chw(noisy), _chw(clean))) > 1e-4  # a different number from the per-channel SSIM


def test_identical_and_bad_inputs():
    x = np.random.rand(3, 16, 16)
    assert psnr(x, x) == np.inf
    assert ssim(x, x) == pytest.approx(1.0) and ssim_matlab(x, x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        psnr(x, x[:, :8])
    with pytest.raises(ValueError, match="at least"):
        ssim(x[:, :8, :8], x[:, :8, :8])
    with pytest.raises(ValueError):
        psnr(np.zeros(5), np.zeros(5))
