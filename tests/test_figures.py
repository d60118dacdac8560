"""Pictures: the curves and comparisons training writes at every validation, the evaluation galleries, read
back as PNGs (size, not blank)."""
import os

import cv2
import numpy as np

from utils.figures import Gallery, comparison, plot_curves, revealing_crop

from conftest import read_png
from test_engine import tiny_cfg


def test_curves_png(tmp_path):
    path = plot_curves(str(tmp_path / "c.png"), [(10, 0.05), (20, 0.03), (30, 0.02)], [(15, 27.0), (30, 29.5)],
                       input_value=26.7, title="run")
    img = read_png(path, (250, 700))
    assert not [f for f in os.listdir(tmp_path) if f != "c.png"]  # written atomically, no temporary left
    # green validation line, red dashed input line, blue loss line are all drawn
    for colour in ((44, 160, 44), (214, 39, 40), (31, 119, 180)):
        assert (np.abs(img.astype(int) - colour).sum(axis=2) < 40).sum() > 20, colour
    # empty histories still give a valid (mostly white) figure, e.g. before the first logged iteration
    plot_curves(str(tmp_path / "e.png"), [], [], input_value=None)
    assert cv2.imread(str(tmp_path / "e.png")) is not None


def test_comparison_has_captions_and_the_images():
    rng = np.random.default_rng(0)
    a, b, c = (rng.random((3, 40, 50), dtype=np.float32) for _ in range(3))
    row = comparison(a, b, c, 20.0, 25.5)
    assert row.shape[0] == 3 and row.shape[2] == 3 * 50 + 2 * 4 and row.shape[1] > 40
    np.testing.assert_allclose(row[:, -40:, :50], a, atol=1e-6)   # the images sit under their caption bands
    np.testing.assert_allclose(row[:, -40:, -50:], c, atol=1e-6)
    band = row[:, :-40, :50]
    assert band.min() < 0.5 < band.max()                         # text drawn on the white band


def test_revealing_crop_finds_the_degraded_region():
    gt = np.zeros((3, 64, 96), np.float32)
    inp = gt.copy()
    inp[:, 40:56, 70:86] = 1.0
    top, left = revealing_crop(inp, gt, 16)  # searched on a grid of a quarter of the crop
    assert abs(top - 40) <= 4 and abs(left - 70) <= 4
    assert inp[0, top:top + 16, left:left + 16].mean() >= 0.75
    assert revealing_crop(inp, gt, 200) == (0, 0)  # smaller than the crop: the whole image


def test_gallery_keeps_the_worst_and_best(tmp_path):
    g = Gallery(count=2, crop=16)
    rng = np.random.default_rng(1)
    for i, value in enumerate([30.0, 21.0, 35.0, 25.0, 33.0, 28.0]):
        gt = rng.random((3, 24, 20), dtype=np.float32)
        g.add(f"im{i}", gt * 0.5, gt, gt, value, value - 3)
    rows = g.rows()
    assert [(label, e[0]) for label, e in rows] == [("worst 1", "im1"), ("worst 2", "im3"), ("best 1", "im2"),
                                                     ("best 2", "im4")]
    img = read_png(g.write(str(tmp_path / "gallery.png")), (4 * 16, 3 * 16))
    assert img.shape[1] == 3 * 16 + 2 * 4
    # fewer images than 2 x count: each is shown once
    small = Gallery(count=3, crop=8)
    small.add("only", *(np.full((3, 8, 8), 0.5, np.float32),) * 3, 30.0)
    assert [label for label, _ in small.rows()] == ["worst 1"]
    assert Gallery(count=2).write(str(tmp_path / "none.png")) is None and not (tmp_path / "none.png").exists()


def test_training_writes_curves_and_comparisons(sidd_lite, tmp_path, caplog):
    from utils.engine import Trainer

    cfg = tiny_cfg(sidd_lite, tmp_path, max_iters=4)
    cfg["val"]["freq"] = 2
    Trainer(cfg, device="cpu").fit()
    model_dir = tmp_path / "model"
    read_png(model_dir / "curves.png", (250, 700))
    shown = sorted(os.listdir(model_dir / "val_images"))
    assert shown == ["0001_01.png"]  # val.log_images 1: the first validation block
    block = read_png(model_dir / "val_images" / shown[0])
    assert block.shape[:2] == (18 + 64, 3 * 64 + 2 * 4)  # caption over input | restored | ground truth (64 x 64)
    log = (model_dir / "train.log").read_text()
    assert f"figures: {model_dir / 'curves.png'}" in log and "(input " in log and " dB: " in log
    assert "visualdl --logdir" in log and "--language en" in log
    # a resumed run keeps drawing the whole history (the curves travel in the resume state)
    cfg = tiny_cfg(sidd_lite, tmp_path, max_iters=None)
    cfg["val"]["freq"] = 2
    t = Trainer(cfg, device="cpu", resume="auto")
    assert [i for i, _ in t.curves["val"]] == [2, 4]
    t.fit()
    assert [i for i, _ in t.curves["val"]] == [2, 4, 6] and [i for i, _ in t.curves["loss"]] == [2, 4, 6]


def test_figures_can_be_turned_off(sidd_lite, tmp_path):
    from utils.engine import Trainer

    cfg = tiny_cfg(sidd_lite, tmp_path, max_iters=2)
    cfg["log"]["figures"] = False
    Trainer(cfg, device="cpu").fit()
    assert not (tmp_path / "model" / "curves.png").exists() and not (tmp_path / "model" / "val_images").exists()


def test_a_gallery_of_zero_rows_keeps_nothing():
    g = Gallery(count=0)
    g.add("a", *(np.zeros((3, 4, 4), np.float32),) * 3, 20.0)
    assert g.rows() == []
