"""Every run config shipped with the repository passes the engine's checks and builds what the Trainer builds
(network shapes only, loss, optimizer, learning-rate schedule, dataset keys), without data or training."""
import glob
import inspect
import os

import paddle
import pytest

from dataloaders import DATASETS
from networks import build_network
from utils.config import ConfigError, load_config
from utils.engine import resolve_config
from utils.losses import build_loss
from utils.schedulers import build_optimizer, build_scheduler

from conftest import ROOT

SHIPPED = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yml")) + glob.glob(os.path.join(ROOT, "training_*.yml")))


def test_the_shipped_configs_are_found():
    names = {os.path.basename(p) for p in SHIPPED}
    assert {"mirnet_v2_lite.yml", "mimo_unet_lite.yml", "mimo_unet_gopro.yml", "training_1card.yml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_config_resolves_and_builds(path):
    cfg = resolve_config(load_config(path))
    with paddle.LazyGuard():
        net = build_network(cfg["network"])
    assert type(net).__name__ == cfg["network"]["name"]
    params = net.parameters()
    assert params and all(p.shape for p in params)
    build_loss(cfg["train"]["loss"])
    scheduler = build_scheduler(cfg["train"]["scheduler"], cfg["train"]["optimizer"]["lr"])
    assert scheduler() == pytest.approx(cfg["train"]["optimizer"]["lr"])   # every shipped schedule starts at lr
    opt = build_optimizer(cfg["train"]["optimizer"], params, scheduler, cfg["train"]["grad_clip"])
    assert opt.get_lr() == pytest.approx(cfg["train"]["optimizer"]["lr"])
    for split in ("train", "val"):
        section = cfg["data"][split]
        if section is None:
            continue
        assert section["name"] in DATASETS, f"{split}: unknown dataset {section['name']}"
        allowed = set(inspect.signature(DATASETS[section["name"]].__init__).parameters) - {"self"}
        assert set(section) - {"name"} <= allowed, f"data.{split} has keys its dataset does not take"


@pytest.mark.parametrize("path", SHIPPED[:1], ids=os.path.basename)
def test_a_misspelt_override_is_refused(path):
    with pytest.raises(ConfigError, match="unknown config key 'train.optimzer.lr'"):
        load_config(path, ["train.optimzer.lr=1e-3"])
