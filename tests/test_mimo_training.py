"""MIMO-UNet training configs: they pass the engine's checks, the official schedule in iterations, and a short
train.py run of the lite config whose checkpoint test_deblurring_gopro.py evaluates."""
import math
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

import test_deblurring_gopro
from dataloaders import build_dataset
from networks import build_network
from utils.config import ConfigError, load_config
from utils.engine import resolve_config
from utils.losses import build_loss
from utils.schedulers import build_schedule

from conftest import ROOT

FULL = {"mimo_unet_gopro.yml": ("MIMOUNet", 8), "mimo_unet_plus_gopro.yml": ("MIMOUNetPlus", 20),
        "mimo_unet_plus_gopro_8cards.yml": ("MIMOUNetPlus", 20)}
CONFIGS = sorted(FULL) + ["mimo_unet_lite.yml"]
GOPRO_TRAIN_PAIRS = 2103


@pytest.fixture(scope="module")
def tiny_gopro(tmp_path_factory):
    """GOPRO-layout folders: train 3 pairs of 48 x 56, test 2 pairs of 30 x 42 (blur = box blur of sharp)."""
    root = tmp_path_factory.mktemp("gopro")
    rng = np.random.RandomState(0)
    for split, n, (h, w) in (("train", 3, (48, 56)), ("test", 2, (30, 42))):
        for kind in ("blur", "sharp"):
            (root / split / kind).mkdir(parents=True)
        for i in range(n):
            sharp = cv2.GaussianBlur(rng.randint(0, 256, (h, w, 3)).astype(np.uint8), (3, 3), 0)
            cv2.imwrite(str(root / split / "sharp" / f"SEQ_{i:06d}.png"), sharp)
            cv2.imwrite(str(root / split / "blur" / f"SEQ_{i:06d}.png"), cv2.blur(sharp, (5, 1)))
    return root


def _load(name, data, *overrides):
    return load_config(os.path.join(ROOT, "configs", name), [f"data.train.root={data / 'train'}",
                                                             f"data.val.root={data / 'test'}", *overrides])


@pytest.mark.parametrize("name", CONFIGS)
def test_config_passes_the_engine_checks(name, tiny_gopro):
    """Everything the Trainer builds from the config, without training: the checked and completed config, the
    network (shapes only), both datasets, the loss and the schedule."""
    cfg = resolve_config(_load(name, tiny_gopro))
    with paddle.LazyGuard():
        net = build_network(cfg["network"])
    assert type(net).__name__ == cfg["network"]["name"]
    assert type(build_dataset(cfg["data"]["train"])).__name__ == "GoProDataset"
    assert type(build_dataset(cfg["data"]["val"])).__name__ == "GoProTestDataset"
    assert type(build_loss(cfg["train"]["loss"])).__name__ == "MultiScaleFreqLoss"
    build_schedule(cfg["train"]["scheduler"])
    raw = load_config(os.path.join(ROOT, "configs", name))
    assert set(raw) == set(cfg) and all(set(raw[k]) == set(cfg[k]) for k in ("data", "train", "val", "output", "log"))
    assert cfg["output"]["model_dir"].startswith("checkpoints/Deblurring/model/MIMO-UNet")
    with pytest.raises(ConfigError, match="unknown config key .train.optimizer.betas2."):
        _load(name, tiny_gopro, "train.optimizer.betas2=[0.9,0.99]")


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_recipe_in_iterations(name, tiny_gopro):
    """Adam 1e-4, crops of 256 with flips, MultiScaleFreqLoss 1.0 / 0.1, no clipping, halved every 500 epochs
    over the official number of epochs, where an epoch is ceil(2103 / global batch) iterations."""
    cfg = resolve_config(_load(name, tiny_gopro))
    net_name, num_res = FULL[name]
    assert cfg["network"] == {"name": net_name, "num_res": num_res}
    train = cfg["train"]
    (stage,) = train["stages"]
    per_epoch = math.ceil(GOPRO_TRAIN_PAIRS / stage["batch_size"])
    epochs = 20000 if "8cards" in name else 3000
    assert stage["iters"] == epochs * per_epoch and stage["patch_size"] == 256
    assert stage["batch_size"] == (32 if "8cards" in name else 4)
    for cards in ((8, 4, 2, 1) if "8cards" in name else (4, 2, 1)):
        assert stage["batch_size"] % cards == 0
    assert train["optimizer"] == {"name": "Adam", "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0}
    assert train["loss"] == {"name": "MultiScaleFreqLoss", "content_weight": 1.0, "freq_weight": 0.1}
    assert train["grad_clip"] is None and train["mixup"]["enable"] is False
    assert cfg["data"]["train"]["patch_size"] == 256 and cfg["data"]["train"]["hflip"] is True
    assert train["ema_decay"] == (0.9999 if "8cards" in name else 0)
    assert train["amp"]["enable"] is ("8cards" in name)
    assert cfg["val"]["freq"] % per_epoch == 0 and cfg["output"]["checkpoint_freq"] % per_epoch == 0
    lr = build_schedule(train["scheduler"])
    halvings = [500 * k * per_epoch for k in range(1, min(epochs // 500, 40))]
    expected_lr = 1e-4
    for m in halvings:
        assert lr(m - 1, 1e-4) == pytest.approx(expected_lr, rel=1e-12)
        expected_lr /= 2
        assert lr(m, 1e-4) == pytest.approx(expected_lr, rel=1e-12)
    assert lr(0, 1e-4) == 1e-4 and lr(stage["iters"] - 1, 1e-4) == pytest.approx(expected_lr, rel=1e-12)


def test_lite_config_trains_and_the_checkpoint_evaluates(tiny_gopro, tmp_path, capsys):
    """train.py -c configs/mimo_unet_lite.yml with the overrides a quick check (or TIPC) uses, then the GoPro
    evaluation of its checkpoint: the script rebuilds the network from config.yml and reproduces the PSNR the
    trainer logged at its final validation (same images, same weights)."""
    out = tmp_path / "run"
    overrides = [f"data.train.root={tiny_gopro / 'train'}", f"data.val.root={tiny_gopro / 'test'}",
                 "network.num_res=1", "train.stages.0.batch_size=2", "train.stages.0.patch_size=32",
                 "train.max_iters=3", "log.print_freq=1", "log.progress_bar=false", "log.visualdl=false",
                 f"output.model_dir={out}/model", f"output.log_dir={out}/logs"]
    run = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c",
                          os.path.join(ROOT, "configs", "mimo_unet_lite.yml"), "--device", "cpu", "-o", *overrides],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    files = set(os.listdir(out / "model"))
    assert {"model_latest.pdparams", "model_best.pdparams", "config.yml", "train.log"} <= files
    log = (out / "model" / "train.log").read_text()
    assert "MIMOUNet" in log and "iter: 3/3" in log and "loss: nan" not in log
    logged = float(re.search(r"validation at iteration 3: psnr ([\d.]+) dB", log).group(1))
    test_deblurring_gopro.main(["--weights", str(out / "model" / "model_latest.pdparams"),
                                "--data", str(tiny_gopro / "test"), "--device", "cpu"])
    text = capsys.readouterr().out
    assert text.startswith("MIMOUNet on ") and "2 images" in text
    assert float(re.search(r"\| PSNR ([\d.]+) dB", text).group(1)) == pytest.approx(logged, abs=0.006)
