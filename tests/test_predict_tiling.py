"""predict.py and tiled restoration: blending, tiled vs whole-image quality, image forms, familiar flags."""
import os

import cv2
import numpy as np
import paddle
import pytest
import yaml

import predict
from networks import build_network
from utils.deploy.restoration import default_image, restore
from utils.deploy.runners import DygraphRunner
from utils.deploy.tiling import TilePlan, blend_window, count_tiles, tile_starts, tiled_run
from utils.image_io import read_image, write_image
from utils.metrics import psnr

from conftest import one_line_error
from test_networks import TINY, save_tiny_network


def make_weights(folder, name="MIRNet_v2"):
    return save_tiny_network(folder, name)


def test_tile_starts_cover_and_window_is_positive():
    for length, tile, overlap in [(100, 32, 8), (64, 64, 8), (65, 64, 8), (10, 32, 4), (1000, 512, 32)]:
        starts = tile_starts(length, min(tile, length), overlap)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + min(tile, length)] = True
        assert covered.all() and starts[-1] + min(tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    w = blend_window(64, 16)
    assert w.min() > 0 and w[16:48].min() == 1.0 and np.allclose(w, w[::-1]) and np.all(np.diff(w[:17]) > 0)
    assert TilePlan(tile=100, multiple=8).size_for(500, 500) == 96
    assert TilePlan(tile="auto").size_for(1024, 1024) == 0 and TilePlan(tile="auto").size_for(1500, 1000) == 512
    assert count_tiles(3000, 4000, 512, 32) == 7 * 9


def test_tiling_is_exact_for_a_local_operator():
    """With a pixel-wise operation, blending must reproduce the untiled result exactly."""
    x = np.random.RandomState(0).rand(2, 3, 70, 93).astype(np.float32)
    run = lambda b: 2.0 * b - 0.25  # noqa: E731
    for tile, overlap, batch in [(32, 8, 1), (24, 0, 3), (64, 31, 2)]:
        np.testing.assert_allclose(tiled_run(run, x, tile, overlap, batch), run(x), atol=1e-6)


def test_tiled_prediction_matches_whole_image_quality():
    """Tiles of 64 (overlap 16) against the whole image on a noisy photograph, both scored against the clean one
    (random weights: the check is that tiling changes the result by far less than 0.05 dB)."""
    paddle.seed(0)
    net = build_network({"name": "MIRNet_v2", **TINY["MIRNet_v2"]})
    net.eval()
    noisy, clean = default_image(160, sigma=25.0)
    runner = DygraphRunner(net)
    whole = np.clip(restore(runner, noisy, TilePlan(tile=0)), 0, 1)
    tiled = np.clip(restore(runner, noisy, TilePlan(tile=64, overlap=16, multiple=net.size_multiple)), 0, 1)
    assert count_tiles(160, 160, 64, 16) == 9
    assert abs(psnr(tiled, clean) - psnr(whole, clean)) < 0.05
    assert psnr(tiled, whole) > 45.0  # global pooling layers see less context in a tile; blending hides seams


def test_predict_image_forms_ground_truth_and_compare(tmp_path, capsys):
    weights, net = make_weights(str(tmp_path / "w"))
    noisy, clean = default_image(64)
    inp, gt, out = tmp_path / "in", tmp_path / "gt", tmp_path / "out"
    write_image(str(inp / "rgb.jpg"), noisy)
    write_image(str(gt / "rgb.png"), clean)  # matched by stem
    gray16 = (noisy.mean(0) * 65535).astype(np.uint16)
    cv2.imwrite(str(inp / "gray16.png"), gray16)
    rgba = np.dstack([(noisy.transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8), np.full((64, 64), 77, np.uint8)])
    cv2.imwrite(str(inp / "rgba.png"), rgba)
    records = predict.main([str(inp), "--weights", weights, "--gt", str(gt), "--save-dir", str(out), "--compare",
                            "--tile", "32", "--tile-overlap", "8", "--batch-size", "2"])
    assert sorted(os.listdir(out)) == ["compare", "gray16.png", "rgb.png", "rgba.png"]
    g = cv2.imread(str(out / "gray16.png"), cv2.IMREAD_UNCHANGED)
    a = cv2.imread(str(out / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert g.dtype == np.uint16 and g.shape == (64, 64) and a.shape == (64, 64, 4) and (a[:, :, 3] == 77).all()
    assert cv2.imread(str(out / "compare" / "rgb.png")).shape == (64, 64 * 3 + 8, 3)
    rec = {r["name"]: r for r in records}
    want = np.clip(restore(DygraphRunner(net), read_image(str(inp / "rgb.jpg")), TilePlan(32, 8, 4)), 0, 1)
    assert rec["rgb.jpg"]["psnr"] == pytest.approx(psnr(want, read_image(str(gt / "rgb.png"))), abs=1e-4)
    assert "psnr" not in rec["rgba.png"]
    assert f"rgb.jpg: PSNR {rec['rgb.jpg']['psnr']:.2f} dB" in capsys.readouterr().out


def test_predict_familiar_flags_on_paired_folder(tmp_path, capsys):
    weights, _ = make_weights(str(tmp_path / "w"))
    noisy, clean = default_image(40)
    for sub, img in (("input", noisy), ("groundtruth", clean)):
        write_image(str(tmp_path / "val" / sub / "0000-0000.png"), img)
    records = predict.main(["--model_ckpt", weights, "--data_path", str(tmp_path / "val"), "--save_path",
                            str(tmp_path / "res"), "--save_images"])
    assert os.path.isfile(tmp_path / "res" / "0000-0000.png") and "psnr" in records[0]
    assert "mean over 1 image(s)" in capsys.readouterr().out


def test_predict_bad_inputs(tmp_path, capsys):
    weights, _ = make_weights(str(tmp_path / "w"))

    def error(argv):
        return one_line_error(capsys, predict.main, argv)

    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert "cannot read image" in error([str(tmp_path / "broken.png"), "--weights", weights])
    assert "no images found" in error([str(tmp_path / "nothing*.png"), "--weights", weights])
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((8, 8, 3), np.uint8))
    assert "weights file not found" in error([str(tmp_path / "ok.png"), "--weights", str(tmp_path / "x.pdparams")])
    assert "tile overlap" in error([str(tmp_path / "ok.png"), "--weights", weights, "--tile", "32",
                                    "--tile-overlap", "40"])
    with open(tmp_path / "w" / "config.yml", "w") as f:
        yaml.safe_dump({"network": {"name": "MIRNet_v2", "n_feat": 32, "n_MRB": 1}}, f)
    assert "does not fit" in error([str(tmp_path / "ok.png"), "--weights", weights])
    with open(tmp_path / "w" / "config.yml", "w") as f:
        yaml.safe_dump({"network": {"name": "MIRNet_v2", "inp_channels": 1, "n_feat": 16, "n_MRB": 1}}, f)
    assert "input channels" in error([str(tmp_path / "ok.png"), "--weights", weights])
