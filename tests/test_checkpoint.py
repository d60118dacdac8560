"""Weight files: strict loading, config discovery, one-line script errors."""
import paddle
import pytest

from networks import build_network
from utils.checkpoint import WeightsError, load_weights, network_config_for, save_weights
from utils.cli import UserError, run_main

TINY = {"name": "MIRNet_v2", "n_feat": 16, "n_MRB": 1}


def test_save_and_strict_load(tmp_path):
    net = build_network(TINY)
    path = str(tmp_path / "w.pdparams")
    save_weights(net, path)
    other = build_network(TINY)
    load_weights(other, path)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items()):
        assert bool((a == b).all()), k
    with pytest.raises(WeightsError, match="wrong shape"):
        load_weights(build_network({"name": "MIRNet_v2", "n_feat": 32, "n_MRB": 1}), path)
    nested = str(tmp_path / "nested.pdparams")
    paddle.save({"params": net.state_dict(), "iter": 3}, nested)
    load_weights(build_network(TINY), nested)


def test_network_config_discovery(tmp_path):
    net = build_network(TINY)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_weights(net, str(run_dir / "model_best.pdparams"))
    with pytest.raises(WeightsError, match="fits no registered network"):
        network_config_for(str(run_dir / "model_best.pdparams"))
    (run_dir / "config.yml").write_text("network: {name: MIRNet_v2, n_feat: 16, n_MRB: 1}\n")
    assert network_config_for(str(run_dir / "model_best.pdparams")) == TINY
    explicit = tmp_path / "other.yml"
    explicit.write_text("network: {name: MIRNet_v2, n_feat: 16, n_MRB: 2}\n")
    assert network_config_for(str(run_dir / "model_best.pdparams"), str(explicit))["n_MRB"] == 2
    with pytest.raises(WeightsError, match="not found"):
        network_config_for(str(run_dir / "model_best.pdparams"), str(tmp_path / "missing.yml"))
    save_weights(build_network({"name": "MIRNet_v2"}), str(tmp_path / "official.pdparams"))
    assert network_config_for(str(tmp_path / "official.pdparams")) == {"name": "MIRNet_v2"}


def test_run_main_reports_user_errors_in_one_line(capsys):
    def bad(argv):
        raise UserError("input folder not found:\n  /nowhere")

    with pytest.raises(SystemExit) as exc:
        run_main(bad)
    assert exc.value.code == 2
    assert capsys.readouterr().err == "error: input folder not found: /nowhere\n"
    assert run_main(lambda argv: 7) == 7
