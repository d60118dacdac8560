"""test_denoising_sidd.py on fake SIDD .mat blocks and on a paired folder, against an independent computation."""
import json
import os

import numpy as np
import paddle
import pytest
import yaml
from scipy import io as sio
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import test_denoising_sidd
from networks import build_network
from utils.image_io import write_image

from conftest import one_line_error, read_png
from test_networks import TINY


@pytest.fixture()
def setup(tmp_path):
    paddle.seed(0)
    cfg = {"name": "MIRNet_v2", **TINY["MIRNet_v2"]}
    net = build_network(cfg)
    net.eval()
    paddle.save(net.state_dict(), str(tmp_path / "w.pdparams"))
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"network": cfg}))
    rng = np.random.RandomState(0)
    gt = rng.randint(20, 236, (2, 3, 24, 28, 3)).astype(np.uint8)
    noisy = np.clip(gt.astype(int) + rng.randint(-25, 26, gt.shape), 0, 255).astype(np.uint8)
    (tmp_path / "mat").mkdir()
    sio.savemat(str(tmp_path / "mat" / "ValidationNoisyBlocksSrgb.mat"), {"ValidationNoisyBlocksSrgb": noisy})
    sio.savemat(str(tmp_path / "mat" / "ValidationGtBlocksSrgb.mat"), {"ValidationGtBlocksSrgb": gt})
    return net, noisy, gt, tmp_path


def matlab_ssim(a, b):
    """Volumetric SSIM over H x W x 3 as MATLAB's ssim computes it (Gaussian 1.5, replicate border)."""
    f = lambda t: ndimage.gaussian_filter(t, 1.5, truncate=5 / 1.5, mode="nearest")  # noqa: E731
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = f(a), f(b)
    sxx, syy, sxy = f(a * a) - mx ** 2, f(b * b) - my ** 2, f(a * b) - mx * my
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))).mean()


def test_sidd_mat_protocol_matches_independent_computation(setup, capsys):
    net, noisy, gt, tmp = setup
    summary = test_denoising_sidd.main(["--weights", str(tmp / "w.pdparams"), "--mat-dir", str(tmp / "mat"),
                                        "--result-dir", str(tmp / "res"), "--save-mat", "--save-images",
                                        "--batch-size", "4", "--gallery", "2"])
    restored = sio.loadmat(str(tmp / "res" / "Idenoised.mat"))["Idenoised"]
    assert restored.dtype == np.float32 and restored.shape == noisy.shape
    psnrs, ssims, mssims = [], [], []
    for i in range(noisy.shape[0]):
        for k in range(noisy.shape[1]):
            x = paddle.to_tensor(noisy[i, k].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
            with paddle.no_grad():
                out = np.clip(net(x).numpy()[0].transpose(1, 2, 0), 0, 1).astype(np.float64)
            np.testing.assert_allclose(restored[i, k], out, atol=1e-5)
            ref = gt[i, k].astype(np.float64) / 255.0
            psnrs.append(peak_signal_noise_ratio(ref, out, data_range=1.0))
            ssims.append(structural_similarity(ref, out, data_range=1.0, channel_axis=2, gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False))
            mssims.append(matlab_ssim(out, ref))
    assert summary["blocks"] == 6
    assert summary["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-4)
    assert summary["ssim_skimage"] == pytest.approx(np.mean(ssims), abs=1e-5)
    assert summary["ssim_matlab"] == pytest.approx(np.mean(mssims), abs=1e-5)
    assert json.load(open(tmp / "res" / "metrics.json")) == pytest.approx(summary)
    assert sorted(os.listdir(tmp / "res" / "png"))[:2] == ["0001_01.png", "0001_02.png"]
    # the gallery: the 2 worst and the 2 best blocks, each a titled row of input | output | ground truth
    gallery = read_png(tmp / "res" / "gallery.png")
    assert gallery.shape[:2] == (4 * (2 * 18 + 24) + 3 * 4, 3 * 28 + 2 * 4)
    assert summary["gallery"] == str(tmp / "res" / "gallery.png")
    out = capsys.readouterr().out
    assert f"gallery of the worst and best blocks: {tmp / 'res' / 'gallery.png'}" in out
    assert f"PSNR {summary['psnr']:.4f} dB" in out and "MATLAB-style" in out and "scikit-image" in out


def test_sidd_paired_folder(setup):
    net, noisy, gt, tmp = setup
    for j in range(3):  # the blocks of the first image, as lossless PNGs
        write_image(str(tmp / "val" / "input" / f"{j}.png"), noisy[0, j].transpose(2, 0, 1) / 255.0)
        write_image(str(tmp / "val" / "groundtruth" / f"{j}.png"), gt[0, j].transpose(2, 0, 1) / 255.0)
    by_folder = test_denoising_sidd.main(["--weights", str(tmp / "w.pdparams"), "--data-dir", str(tmp / "val"),
                                          "--result-dir", str(tmp / "r1")])
    by_mat = test_denoising_sidd.main(["--weights", str(tmp / "w.pdparams"), "--mat-dir", str(tmp / "mat"),
                                       "--result-dir", str(tmp / "r2"), "--limit", "1"])
    assert by_folder["blocks"] == by_mat["blocks"] == 3
    assert by_folder == pytest.approx(by_mat, abs=1e-6)


def test_sidd_bad_inputs(setup, capsys):
    _, noisy, _, tmp = setup

    def error(argv):
        return one_line_error(capsys, test_denoising_sidd.main, ["--weights", str(tmp / "w.pdparams")] + argv)

    assert "SIDD file not found" in error(["--mat-dir", str(tmp / "nowhere")])
    sio.savemat(str(tmp / "mat" / "ValidationGtBlocksSrgb.mat"), {"wrong_key": noisy})
    assert "has no variable 'ValidationGtBlocksSrgb'" in error(["--mat-dir", str(tmp / "mat")])
    sio.savemat(str(tmp / "mat" / "ValidationGtBlocksSrgb.mat"), {"ValidationGtBlocksSrgb": noisy[:, :, :, :, 0]})
    assert "must be uint8 [images, blocks, H, W, 3]" in error(["--mat-dir", str(tmp / "mat")])
    assert "not a paired folder" in error(["--data-dir", str(tmp)])
