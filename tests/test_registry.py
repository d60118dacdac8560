"""The one registry mechanism (utils/registry.py) behind networks, datasets, losses, schedules and optimizers,
and the one error family (utils/errors.py) the scripts turn into a single line."""
import pytest

from dataloaders import DATASETS, build_dataset
from networks import NETWORKS, build_network
from utils import errors
from utils.engine import resolve_config
from utils.losses import LOSSES, build_loss
from utils.registry import Registry, normalise
from utils.schedulers import OPTIMIZERS, SCHEDULES, build_schedule


def test_every_registry_is_one_mechanism_with_one_key_word():
    for registry in (NETWORKS, DATASETS, LOSSES, SCHEDULES, OPTIMIZERS):
        assert isinstance(registry, Registry) and len(registry) >= 3
    with pytest.raises(errors.UnknownNameError, match="did you mean 'L1Loss'"):
        build_loss({"name": "L1Los"})
    with pytest.raises(errors.UnknownNameError, match="did you mean 'StepLR'"):
        build_schedule({"name": "StepLr", "step_size": 2})
    with pytest.raises(errors.UnknownArgumentError, match="'T_mx' .*did you mean 'T_max'"):
        build_schedule({"name": "CosineAnnealingLR", "T_mx": 3})
    with pytest.raises(errors.UnknownArgumentError, match="needs the key.* step_size"):
        build_schedule({"name": "StepLR"})
    with pytest.raises(errors.ConfigError, match="needs a 'name' key"):
        build_network({"n_feat": 8})


def test_the_older_key_word_is_read_with_one_notice(capsys, monkeypatch):
    from utils import registry

    monkeypatch.setattr(registry, "_told", set())
    assert build_schedule({"type": "StepLR", "step_size": 2, "gamma": 0.5})(4, 1.0) == 0.25
    assert build_schedule({"type": "StepLR", "step_size": 2, "gamma": 0.5})(0, 1.0) == 1.0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: train.scheduler: the key 'type' is deprecated, write 'name: StepLR'"]
    assert normalise({"type": "A", "x": 1}, "somewhere") == {"name": "A", "x": 1}


def test_resolved_configs_write_the_new_key_word(sidd_lite):
    cfg = resolve_config({"network": {"name": "MIRNet_v2"},
                          "data": {"train": {"type": "PairedImageDataset", "root": str(sidd_lite)}},
                          "train": {"stages": [{"iters": 1, "batch_size": 1}], "loss": {"type": "L1Loss"},
                                    "optimizer": {"type": "Adam", "lr": 1e-3}}})
    assert cfg["data"]["train"]["name"] == "PairedImageDataset" and "type" not in cfg["data"]["train"]
    assert cfg["train"]["loss"] == {"name": "L1Loss"} and cfg["train"]["optimizer"]["name"] == "Adam"
    assert cfg["train"]["scheduler"] == {"name": "ConstantLR"}


def test_every_user_error_is_a_user_error():
    kinds = [errors.ConfigError, errors.UnknownNameError, errors.UnknownArgumentError, errors.WeightsError,
             errors.DeviceError, errors.ImageError, errors.DatasetError]
    assert all(issubclass(k, errors.UserError) for k in kinds)
    assert str(errors.UnknownNameError("plain text")) == "plain text"  # not quoted like a KeyError
    with pytest.raises(errors.DatasetError):
        build_dataset({"name": "PairedImageDataset", "root": "/nonexistent/folder"})
