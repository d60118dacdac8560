"""Official-format checkpoints -> .pdparams, with real files written by torch.save."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from networks import build_network
from utils.checkpoint import WeightsError, load_weights, read_state_dict
from utils.weights.official import convert_official

from conftest import ROOT

torch = pytest.importorskip("torch", reason="torch writes the official-format files (pip install torch==2.13.0)")

TINY = {"n_feat": 16, "n_MRB": 1}
CONVERT = [sys.executable, os.path.join(ROOT, "tools", "convert_weights.py")]


def _official_state(cfg=TINY, seed=0):
    """Random tensors under the network's (= the official) key names, as torch tensors."""
    rng = np.random.RandomState(seed)
    net = build_network({"name": "MIRNet_v2", **cfg})
    return {k: torch.from_numpy(rng.standard_normal(v.shape).astype(np.float32)) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("layout", ["params", "bare", "module_prefix", "legacy_format"])
def test_round_trip(tmp_path, layout):
    state = _official_state()
    src, dst = tmp_path / "official.pth", tmp_path / "converted.pdparams"
    if layout == "params":
        torch.save({"params": state}, src)
    elif layout == "bare":
        torch.save(state, src)
    elif layout == "module_prefix":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 7}, src)
    else:
        torch.save({"params": state}, src, _use_new_zipfile_serialization=False)
    res = subprocess.run(CONVERT + ["--arch", "MIRNet_v2", "--src", str(src), "--dst", str(dst),
                                    "-o", "n_feat=16", "-o", "n_MRB=1"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = paddle.load(str(dst))
    net = build_network({"name": "MIRNet_v2", **TINY})
    assert list(loaded) == list(net.state_dict())
    missing, unexpected = net.set_state_dict(loaded)
    assert not missing and not unexpected
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k].numpy())


def test_converter_works_without_torch(tmp_path):
    src, dst = tmp_path / "official.pth", tmp_path / "converted.pdparams"
    torch.save({"params": _official_state()}, src)
    argv = CONVERT[1:] + ["--arch", "MIRNet_v2", "--src", str(src), "--dst", str(dst), "-o", "n_feat=16",
                          "-o", "n_MRB=1"]
    code = ("import sys, runpy; sys.modules['torch'] = None; "  # any 'import torch' now fails
            f"sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    net = load_weights(build_network({"name": "MIRNet_v2", **TINY}), str(dst))
    assert net is not None


def test_converted_weights_reproduce_torch_computation(tmp_path):
    """The converted first conv gives the same numbers as torch's conv with the official tensor."""
    state = _official_state()
    src = tmp_path / "official.pth"
    torch.save({"params": state}, src)
    converted = convert_official("MIRNet_v2", str(src), TINY)
    x = np.random.RandomState(3).rand(1, 3, 8, 8).astype(np.float32)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), state["conv_in.weight"], padding=1).numpy()
    ours = paddle.nn.functional.conv2d(paddle.to_tensor(x), paddle.to_tensor(converted["conv_in.weight"]),
                                       padding=1).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_mismatched_checkpoints_are_refused(tmp_path):
    state = _official_state()
    dst = tmp_path / "out.pdparams"
    cases = {
        "missing": {k: v for i, (k, v) in enumerate(state.items()) if i != 5},
        "extra": {**state, "head.weight": torch.zeros(3)},
        "shape": {**state, "conv_in.weight": torch.zeros(16, 3, 5, 5)},
    }
    for label, bad in cases.items():
        src = tmp_path / f"{label}.pth"
        torch.save({"params": bad}, src)
        res = subprocess.run(CONVERT + ["--arch", "MIRNet_v2", "--src", str(src), "--dst", str(dst),
                                        "-o", "n_feat=16", "-o", "n_MRB=1"], capture_output=True, text=True)
        assert res.returncode != 0
        assert "does not fit the network" in res.stderr and label.split("_")[0][:4] in res.stderr.replace(
            "wrong shape", "shape").replace("unexpected", "extra"), res.stderr
        assert "Traceback" not in res.stderr and res.stderr.strip().splitlines()[-1].startswith("error:")
        assert not dst.exists()
    # full-size official weights against the tiny network: refused, naming shapes
    src = tmp_path / "full.pth"
    torch.save({"params": _official_state(cfg={})}, src)
    with pytest.raises(WeightsError, match="wrong shape"):
        convert_official("MIRNet_v2", str(src), TINY)


def test_unreadable_sources(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    res = subprocess.run(CONVERT + ["--arch", "MIRNet_v2", "--src", str(junk), "--dst", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "error:" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(CONVERT + ["--arch", "MIRNet_v2", "--src", str(tmp_path / "nope.pth"), "--dst", "x"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "not found" in res.stderr


def test_load_weights_refuses_foreign_files(tmp_path):
    net = build_network({"name": "MIRNet_v2", **TINY})
    src = tmp_path / "official.pth"
    torch.save({"params": _official_state()}, src)
    with pytest.raises(WeightsError, match="convert"):
        read_state_dict(str(src))
    with pytest.raises(WeightsError, match="not found"):
        load_weights(net, str(tmp_path / "missing.pdparams"))
