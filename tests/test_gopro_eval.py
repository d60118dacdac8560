"""test_deblurring_gopro.py and the GoPro protocol (utils.deploy.evaluation): protocol, self-ensemble, saved
images, exported models, bad input."""
import csv
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

import test_deblurring_gopro
from dataloaders.paired import GoProTestDataset
from networks import build_network
from utils.checkpoint import save_weights
from utils.deploy.ensemble import EnsembleRunner, self_ensemble
from utils.deploy.evaluation import evaluate_pairs
from utils.deploy.runners import DygraphRunner
from utils.metrics import psnr

from conftest import ROOT, one_line_error, read_png

TINY = {"name": "MIMOUNet", "num_res": 1}


def restore(net, x, ensemble="none"):
    """The protocol's prediction: the (self-ensembled) network's full-resolution output clamped to [0, 1]."""
    return paddle.to_tensor(np.clip(EnsembleRunner(DygraphRunner(net), ensemble)(x.numpy()), 0, 1))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three 20 x 28 pairs: sharp random, blur = 3-pixel horizontal box blur of it."""
    root = tmp_path_factory.mktemp("gopro") / "test"
    rng = np.random.RandomState(0)
    for kind in ("blur", "sharp"):
        (root / kind).mkdir(parents=True)
    for i in range(3):
        sharp = rng.randint(0, 256, (20, 28, 3)).astype(np.uint8)
        cv2.imwrite(str(root / "sharp" / f"SEQ_{i:06d}.png"), sharp)
        cv2.imwrite(str(root / "blur" / f"SEQ_{i:06d}.png"), cv2.blur(sharp, (3, 1)))
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    paddle.seed(1)
    net = build_network(TINY)
    save_weights(net, str(folder / "best.pdparams"))
    (folder / "config.yml").write_text("network:\n  name: MIMOUNet\n  num_res: 1\n")
    return folder / "best.pdparams", net


def test_protocol_values(data, weights):
    path, net = weights
    net.eval()
    ds = GoProTestDataset(str(data))
    res = evaluate_pairs(DygraphRunner(net), ds, progress=False)
    inp, tgt = ds[1]
    with paddle.no_grad():
        expected = paddle.clip(net(paddle.to_tensor(inp[None]))[-1], 0, 1).numpy()[0]
    assert res["rows"][1][0] == "SEQ_000001.png"
    assert res["rows"][1][1] == pytest.approx(psnr(expected, tgt), abs=1e-6)
    assert res["input_psnr"] == pytest.approx(np.mean([psnr(*ds[i]) for i in range(3)]))
    assert res["psnr"] == pytest.approx(np.mean([r[1] for r in res["rows"]]))
    assert 0 < res["ssim"] < 1 and res["seconds"] is None


def test_restore_with_ensemble(weights):
    _, net = weights
    net.eval()
    x = paddle.rand([1, 3, 12, 16])
    with paddle.no_grad():
        manual = self_ensemble(lambda t: net(t)[-1], x, "rot4").clip(0, 1).numpy()
    np.testing.assert_allclose(restore(net, x, "rot4").numpy(), manual, atol=1e-6)


def test_script_end_to_end(data, weights, tmp_path, capsys):
    path, net = weights
    out = tmp_path / "results"
    test_deblurring_gopro.main(["--weights", str(path), "--data", str(data), "--save-dir", str(out),
                                "--self-ensemble", "--timing", "--device", "cpu", "--gallery", "1"])
    text = capsys.readouterr().out
    assert "MIMOUNet + self-ensemble rot4" in text and "3 images" in text and "s/image on cpu" in text
    assert f"gallery of the worst and best images: {out / 'gallery.png'}" in text
    assert read_png(out / "gallery.png").shape[:2] == (2 * (2 * 18 + 20) + 4, 3 * 28 + 2 * 4)  # worst, best
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["name"] for r in rows] == [f"SEQ_{i:06d}.png" for i in range(3)]
    saved = cv2.imread(str(out / "SEQ_000002.png"))
    assert saved.shape == (20, 28, 3)
    ds = GoProTestDataset(str(data))
    pred = restore(net, paddle.to_tensor(ds[2][0][None]), "rot4").numpy()[0]
    saved_rgb = cv2.cvtColor(saved, cv2.COLOR_BGR2RGB).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(saved_rgb, pred, atol=0.5 / 255 + 1e-6)
    assert float(rows[2]["psnr"]) == pytest.approx(psnr(pred, ds[2][1]), abs=1e-3)


def test_script_config_and_detection(data, weights, tmp_path, capsys):
    path, net = weights
    # weights without a config beside them, default MIMO-UNet: found from the keys
    default = tmp_path / "MIMOUNet_GoPro.pdparams"
    save_weights(build_network({"name": "MIMOUNet"}), str(default))
    test_deblurring_gopro.main(["--weights", str(default), "--data", str(data), "--max-images", "1", "--device", "cpu"])
    assert capsys.readouterr().out.startswith("MIMOUNet on")
    # tiny weights elsewhere, config given with -c
    lone = tmp_path / "tiny.pdparams"
    lone.write_bytes(path.read_bytes())
    test_deblurring_gopro.main(["--weights", str(lone), "-c", str(path.parent / "config.yml"), "--data", str(data),
                                "--max-images", "2", "--device", "cpu"])
    assert "2 images" in capsys.readouterr().out


def test_script_bad_input(data, weights, tmp_path, capsys):
    path, _ = weights
    plus_cfg = tmp_path / "plus.yml"
    plus_cfg.write_text("network:\n  name: MIMOUNetPlus\n  num_res: 2\n")
    cases = [
        (["--weights", str(tmp_path / "none.pdparams"), "--data", str(data)], "weights file not found"),
        (["--weights", str(path), "--data", str(tmp_path / "nodata")], "data folder not found"),
        (["--weights", str(path), "--data", str(data), "-c", str(plus_cfg)], "does not fit the network"),
        (["--weights", str(path), "--data", str(data), "--device", "npu:3"], "npu"),
        (["--weights", str(path), "--data", str(data), "--max-images", "0"], "at least 1"),
    ]
    for args, message in cases:
        err = one_line_error(capsys, test_deblurring_gopro.main, args + ["--save-dir", str(tmp_path / "results")])
        assert message in err, err
    assert not (tmp_path / "results").exists()
    # the script itself, as a user runs it
    res = subprocess.run([sys.executable, os.path.join(ROOT, "test_deblurring_gopro.py"), "--weights", str(path),
                          "--data", str(tmp_path / "nodata")], capture_output=True, text=True, cwd=str(tmp_path))
    assert res.returncode == 2 and res.stderr.strip().startswith("error: data folder not found")
