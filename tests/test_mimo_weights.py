"""Official MIMO-UNet / MIMO-UNet+ checkpoints (.pkl written by torch.save) -> .pdparams."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from networks import build_network
from utils.checkpoint import WeightsError, load_weights
from utils.weights.official import READERS, convert_official

from conftest import ROOT

torch = pytest.importorskip("torch", reason="torch writes the official-format files (pip install torch==2.13.0)")

CONVERT = [sys.executable, os.path.join(ROOT, "tools", "convert_weights.py")]


def _official_state(name, cfg=None, seed=0):
    rng = np.random.RandomState(seed)
    net = build_network({"name": name, **(cfg or {})})
    return {k: torch.from_numpy(rng.standard_normal(v.shape).astype(np.float32)) for k, v in net.state_dict().items()}


def _training_checkpoint(state):
    """What the official train.py saves: model, Adam and MultiStepLR state dicts, epoch."""
    params = [torch.nn.Parameter(v.clone()) for v in state.values()]
    opt = torch.optim.Adam(params, lr=1e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [500, 1000], 0.5)
    sum(p.sum() for p in params).backward()
    opt.step()
    sched.step()
    return {"model": state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 1}


def test_readers_registered():
    assert {"MIMOUNet", "MIMOUNetPlus"} <= set(READERS)


def test_training_checkpoint_converts_with_cli(tmp_path):
    """The legacy (non-zip) format of the PyTorch releases the official code was written for."""
    state = _official_state("MIMOUNetPlus", {"num_res": 1})
    src, dst = tmp_path / "model.pkl", tmp_path / "converted.pdparams"
    torch.save(_training_checkpoint(state), src, _use_new_zipfile_serialization=False)
    res = subprocess.run(CONVERT + ["--arch", "MIMOUNetPlus", "--src", str(src), "--dst", str(dst), "-o", "num_res=1"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    net = load_weights(build_network({"name": "MIMOUNetPlus", "num_res": 1}), str(dst))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k].numpy())


def test_training_checkpoint_zip_format(tmp_path):
    state = _official_state("MIMOUNet", {"num_res": 2}, seed=4)
    src = tmp_path / "model_500.pkl"
    torch.save(_training_checkpoint(state), src)
    converted = convert_official("MIMOUNet", str(src), {"num_res": 2})
    assert list(converted) == list(state)
    for k, v in converted.items():
        np.testing.assert_array_equal(v, state[k].numpy())


def test_official_size_file_and_forward(tmp_path):
    """A full-size official MIMO-UNet file converts; the converted net runs the official first layers' maths."""
    state = _official_state("MIMOUNet")
    src = tmp_path / "MIMO-UNet.pkl"
    torch.save({"model": state}, src)
    converted = convert_official("MIMOUNet", str(src))
    assert sum(v.size for v in converted.values()) == 6_807_171
    net = build_network({"name": "MIMOUNet"})
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in converted.items()})
    x = np.random.RandomState(1).rand(1, 3, 8, 8).astype(np.float32)
    ref = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), state["feat_extract.0.main.0.weight"],
                                                state["feat_extract.0.main.0.bias"], padding=1)).numpy()
    np.testing.assert_allclose(net.feat_extract[0](paddle.to_tensor(x)).numpy(), ref, atol=1e-4)
    # the same file under the wrong architecture: refused, naming the one it fits
    with pytest.raises(WeightsError, match=r"missing.*fits MIMOUNet: use --arch MIMOUNet"):
        convert_official("MIMOUNetPlus", str(src))


def test_wrong_arch_refused_by_cli(tmp_path):
    src, dst = tmp_path / "MIMO-UNet.pkl", tmp_path / "out.pdparams"
    torch.save({"model": _official_state("MIMOUNet", {"num_res": 1})}, src)
    res = subprocess.run(CONVERT + ["--arch", "MIMOUNetPlus", "--src", str(src), "--dst", str(dst), "-o", "num_res=2"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and not dst.exists()
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "does not fit the network" in last and "missing" in last
    assert "Traceback" not in res.stderr


def test_transposed_conv_layout_is_kept(tmp_path):
    """Transposed-conv weights are [in, out, 4, 4] in both frameworks: same numbers as torch's conv_transpose2d."""
    state = _official_state("MIMOUNet", {"num_res": 1}, seed=2)
    src = tmp_path / "m.pkl"
    torch.save({"model": state}, src)
    converted = convert_official("MIMOUNet", str(src), {"num_res": 1})
    x = np.random.RandomState(3).rand(1, 128, 5, 6).astype(np.float32)
    w, b = "feat_extract.3.main.0.weight", "feat_extract.3.main.0.bias"
    ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), state[w], state[b], stride=2, padding=1).numpy()
    ours = paddle.nn.functional.conv2d_transpose(paddle.to_tensor(x), paddle.to_tensor(converted[w]),
                                                 paddle.to_tensor(converted[b]), stride=2, padding=1).numpy()
    assert ours.shape == (1, 64, 10, 12)
    np.testing.assert_allclose(ours, ref, atol=1e-3)
