"""Training on the CPU: the math-library set-up, when the static oneDNN step is taken (cpu_static_plan), its
numerics against the dygraph step, resume and two-process launch with it, the fallback to dygraph, and the
benchmark's train backend configuration."""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from utils import device as device_mod
from utils.deploy import benchmark as bm
from utils.engine import Trainer, cpu_static
from utils.engine.cpu_static import StaticTrainStep, cpu_static_plan

from conftest import ROOT

AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx fma avx2\n"
AMD_OLD = AMD.replace(" avx2", "")
INTEL = AMD.replace("AuthenticAMD", "GenuineIntel").replace("AMD EPYC 7B13", "Intel Xeon")
STATIC_LINE = "training step: network and loss as a static program with oneDNN kernels"
FAILED_LINE = "train.cpu_static: the static CPU step failed"


# ------------------------------------------------------------------------------------------ CPU math set-up
def _fake_cpuinfo(monkeypatch, text):
    """/proc/cpuinfo as utils.device reads it replaced by ``text``."""
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/cpuinfo":
            import io
            return io.StringIO(text)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(device_mod, "open", fake_open, raising=False)


@pytest.mark.parametrize("cpuinfo, expected", [(AMD, "5"), (INTEL, None), (AMD_OLD, None)],
                         ids=["amd-avx2", "intel", "amd-without-avx2"])
def test_cpu_math_setup_follows_the_simulated_cpu(monkeypatch, cpuinfo, expected):
    _fake_cpuinfo(monkeypatch, cpuinfo)
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    chosen = device_mod.configure_cpu_math()
    assert os.environ.get("MKL_DEBUG_CPU_TYPE") == expected
    assert chosen == ({"MKL_DEBUG_CPU_TYPE": expected} if expected else {})


def test_cpu_math_setup_keeps_the_users_value(monkeypatch):
    _fake_cpuinfo(monkeypatch, AMD)
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "2")
    assert device_mod.configure_cpu_math() == {} and os.environ["MKL_DEBUG_CPU_TYPE"] == "2"


def test_cpu_math_setup_runs_before_paddle_is_imported():
    """The entry helper (run_main) in a fresh process on a simulated AMD CPU: the variable is set when main()
    starts and Paddle is not loaded yet (MKL reads it once, when Paddle's math library loads)."""
    code = f"""
import io, os, sys
sys.path.insert(0, {ROOT!r})
import utils.cli, utils.device
real_open = open
utils.device.open = lambda p, *a, **k: io.StringIO({AMD!r}) if p == "/proc/cpuinfo" else real_open(p, *a, **k)
def main(argv):
    print("paddle loaded" if "paddle" in sys.modules else "paddle not loaded", os.environ.get("MKL_DEBUG_CPU_TYPE"))
    import paddle  # noqa: F401
utils.cli.run_main(main, [])
"""
    env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "paddle not loaded 5"
    env["MKL_DEBUG_CPU_TYPE"] = "1"  # the user's own value is what the process sees
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "paddle not loaded 1"


# ------------------------------------------------------------------------------------------ cpu_static_plan
def test_cpu_static_plan():
    v = "3.3.1"
    assert cpu_static_plan("auto", "MIMOUNet", "cpu", False, v) == (True, None)
    assert cpu_static_plan("auto", "MIRNet_v2", "cpu", False, v) == (False, None)
    assert cpu_static_plan(True, "MIRNet_v2", "cpu", False, v) == (True, None)
    assert cpu_static_plan(False, "MIMOUNet", "cpu", False, v) == (False, None)
    for dev in ("gpu:0", "npu:0", "gpu"):  # accelerators keep the dygraph step, without a word
        for setting in ("auto", True):
            assert cpu_static_plan(setting, "MIMOUNet", dev, False, v) == (False, None)
    use, note = cpu_static_plan("auto", "MIMOUNet", "cpu", True, v)
    assert not use and note == "train.cpu_static: AMP is on, so the training step runs in dygraph"
    for other in ("3.2.0", "3.4.0", "2.6.2", "3.30.0"):
        use, note = cpu_static_plan(True, "MIMOUNet", "cpu", False, other)
        assert not use and f"needs Paddle 3.3.x (this is {other})" in note
    # without a version: this Paddle's
    assert cpu_static_plan(True, "MIMOUNet", "cpu", False)[0] == bool(re.fullmatch(r"3\.3\.\d+", paddle.__version__))


# ------------------------------------------------------------------------------------------ training runs
@pytest.fixture(scope="module")
def gopro(tmp_path_factory):
    """A GOPRO-layout train folder: 4 pairs of 40 x 48 (blur = box blur of a smoothed random image)."""
    root = tmp_path_factory.mktemp("gopro_cpu")
    rng = np.random.RandomState(1)
    for kind in ("blur", "sharp"):
        (root / "train" / kind).mkdir(parents=True)
    for i in range(4):
        sharp = cv2.GaussianBlur(rng.randint(0, 256, (40, 48, 3)).astype(np.uint8), (3, 3), 0)
        cv2.imwrite(str(root / "train" / "sharp" / f"SEQ_{i:06d}.png"), sharp)
        cv2.imwrite(str(root / "train" / "blur" / f"SEQ_{i:06d}.png"), cv2.blur(sharp, (5, 1)))
    return root


def mimo_cfg(data, out, iters=4, **train):
    cfg = {
        "seed": 5,
        "network": {"name": "MIMOUNet", "num_res": 1},
        "data": {"train": {"name": "GoProDataset", "root": str(data / "train"), "patch_size": 32, "hflip": True},
                 "val": None},
        "train": {"stages": [{"iters": iters, "batch_size": 2, "patch_size": 32}],
                  "loss": {"name": "MultiScaleFreqLoss", "content_weight": 1.0, "freq_weight": 0.1},
                  "optimizer": {"name": "Adam", "lr": 1e-3}, "scheduler": {"name": "ConstantLR"}},
        "val": {"freq": 10 ** 6},
        "output": {"model_dir": str(out / "model"), "log_dir": str(out / "logs"), "checkpoint_freq": 2},
        "log": {"print_freq": 1, "progress_bar": False, "visualdl": False, "figures": False},
    }
    cfg["train"].update(train)
    return cfg


def _log(trainer):
    return open(os.path.join(trainer.model_dir, "train.log"), encoding="utf-8").read()


def _weights(net):
    return {k: v.numpy().astype(np.float64) for k, v in net.state_dict().items()}


def _max_diff(a, b):
    a, b = (x if isinstance(x, dict) else _weights(x) for x in (a, b))
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def dygraph_run(gopro, tmp_path_factory):
    """The reference: 4 iterations of the dygraph step on Paddle's own kernels."""
    t = Trainer(mimo_cfg(gopro, tmp_path_factory.mktemp("dy"), cpu_static=False, onednn_ops=False), device="cpu",
                record_history=True)
    t.fit()
    assert t.static_step is None and STATIC_LINE not in _log(t)
    return t


def test_static_step_matches_dygraph(gopro, tmp_path, dygraph_run, capfd):
    """Same seed, same batches: the loss curves agree to rtol 1e-4 and the weights after 4 Adam steps (lr 1e-3)
    to 1e-4 absolute; the static step was used throughout (no fallback), and Paddle's oneDNN debug print stays
    off the console while the run's own lines reach it."""
    t = Trainer(mimo_cfg(gopro, tmp_path, cpu_static=True), device="cpu", record_history=True)
    start = _weights(t.net)
    t.fit()
    out = capfd.readouterr().out
    assert "ReduceMeanCheckIfOneDNNSupport" not in out and "iter: 4/4" in out and STATIC_LINE in out
    log = _log(t)
    assert isinstance(t.static_step, StaticTrainStep) and t.static_step.active
    assert STATIC_LINE in log and FAILED_LINE not in log
    losses, ref = [h["loss"] for h in t.history], [h["loss"] for h in dygraph_run.history]
    assert len(losses) == 4 and max(ref) - min(ref) > 1e-4  # training moves the loss
    np.testing.assert_allclose(losses, ref, rtol=1e-4)
    assert _max_diff(t.net, dygraph_run.net) < 1e-4
    assert _max_diff(t.net, start) > 1e-3  # and the weights did move


def test_static_step_resumes_exactly(gopro, tmp_path):
    full = Trainer(mimo_cfg(gopro, tmp_path / "a", cpu_static=True), device="cpu", record_history=True)
    full.fit()
    first = Trainer(mimo_cfg(gopro, tmp_path / "b", cpu_static=True, max_iters=2), device="cpu",
                    record_history=True)
    first.fit()
    second = Trainer(mimo_cfg(gopro, tmp_path / "b", cpu_static=True), device="cpu", resume="auto",
                     record_history=True)
    assert second.iter == 2 and second.static_step.active
    second.fit()
    losses = [h["loss"] for h in full.history]
    assert len(losses) == 4 and max(losses) - min(losses) > 1e-4
    np.testing.assert_allclose([h["loss"] for h in first.history + second.history], losses, rtol=0, atol=1e-6)
    assert _max_diff(full.net, second.net) < 1e-6
    assert all(FAILED_LINE not in _log(t) for t in (full, second))


def test_static_step_micro_batches_accumulate_to_the_full_batch(gopro, tmp_path):
    """Batches of 3 in micro-batches of 2 + 1 with the static step (two traced shapes: building the second one
    in the middle of a step would reset the gradients of the first micro-batch): the same losses and weights as
    the whole batch in dygraph."""
    runs = []
    for static, micro in ((False, None), (True, 2)):
        cfg = mimo_cfg(gopro, tmp_path / str(static), iters=3, cpu_static=static, onednn_ops=False)
        cfg["train"]["stages"][0].update(batch_size=3, micro_batch=micro)
        t = Trainer(cfg, device="cpu", record_history=True)
        t.fit()
        assert (t.static_step is not None and t.static_step.active) == static and FAILED_LINE not in _log(t)
        runs.append(t)
    np.testing.assert_allclose([h["loss"] for h in runs[1].history], [h["loss"] for h in runs[0].history], rtol=1e-4)
    assert _max_diff(runs[0].net, runs[1].net) < 1e-4


class _BrokenBackward(paddle.autograd.PyLayer):
    """Identity forward whose backward raises, as a failing static program run would."""

    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("(PreconditionNotMet) simulated oneDNN failure\n  at the backward program")


@pytest.mark.parametrize("where", ["build", "run"])
def test_failing_static_step_falls_back_once(gopro, tmp_path, dygraph_run, monkeypatch, where):
    """A program that cannot be built (or whose backward fails while running) switches the run to dygraph with
    one warning line; the failed step is recomputed, so the losses and weights are those of the dygraph run."""
    if where == "build":
        def broken(self, inp, target):
            raise RuntimeError("simulated: the program cannot be built")
    else:
        def broken(self, inp, target):
            return lambda x, y: _BrokenBackward.apply(self.loss_fn(self.net(x), y))
    calls = []
    monkeypatch.setattr(StaticTrainStep, "_program", lambda self, i, t: calls.append(1) or broken(self, i, t))
    t = Trainer(mimo_cfg(gopro, tmp_path, cpu_static=True), device="cpu", record_history=True)
    t.fit()
    log = _log(t)
    assert not t.static_step.active and log.count(FAILED_LINE) == 1
    failed = [ln for ln in log.splitlines() if FAILED_LINE in ln][0]
    assert ("(RuntimeError: simulated: the program cannot be built)" if where == "build"
            else "RuntimeError: (PreconditionNotMet) simulated oneDNN failure)") in failed
    # never tried again after the failure: only the first step asked for its program (before the step, to build
    # it, and for the forward call when the build worked)
    assert len(calls) == (1 if where == "build" else 2)
    np.testing.assert_allclose([h["loss"] for h in t.history], [h["loss"] for h in dygraph_run.history], rtol=1e-4)
    assert _max_diff(t.net, dygraph_run.net) < 1e-4


def test_static_step_that_cannot_be_set_up_leaves_dygraph_with_its_reason(gopro, tmp_path, monkeypatch):
    def no_hook(self, *args):
        raise AttributeError("module 'pir_partial_program' has no attribute 'apply_general_passes'")

    monkeypatch.setattr(StaticTrainStep, "__init__", no_hook)
    t = Trainer(mimo_cfg(gopro, tmp_path, iters=1, onednn_ops=False), device="cpu")  # auto: the static step
    assert t.static_step is None
    t.fit()
    lines = [ln for ln in _log(t).splitlines() if "train.cpu_static" in ln]
    assert len(lines) == 1 and lines[0].endswith(
        "train.cpu_static: the static CPU step cannot be set up (AttributeError: module 'pir_partial_program' has no "
        "attribute 'apply_general_passes'); training in dygraph")


@pytest.mark.parametrize("step", ["default", "static"])
def test_ema_and_amp_settings(gopro, tmp_path, step):
    """ema_decay > 0: the step trains (the default one: dygraph on oneDNN kernels; or the static program), the
    EMA copy follows the network; AMP asked for on the CPU (where it is off) keeps that step and trains to
    finite losses."""
    t = Trainer(mimo_cfg(gopro, tmp_path / "ema", iters=3, ema_decay=0.5, amp={"enable": True, "level": "O1"},
                         **({"cpu_static": True} if step == "static" else {})), device="cpu", record_history=True)
    start = _weights(t.net)
    t.fit()
    if step == "static":
        assert not t.amp and t.static_step is not None and t.static_step.active and FAILED_LINE not in _log(t)
    else:
        assert not t.amp and t.static_step is None and t.onednn_layers > 0
    assert all(np.isfinite(h["loss"]) for h in t.history) and len(t.history) == 3
    assert 1e-6 < _max_diff(t.ema_net, t.net) and 1e-6 < _max_diff(t.ema_net, start)
    # the EMA weights lie between the start and the trained network, parameter by parameter (decay 0.5)
    e, n = _weights(t.ema_net), _weights(t.net)
    k = max(e, key=lambda k: np.abs(start[k] - n[k]).max())  # the parameter that moved most
    assert np.abs(e[k] - n[k]).max() < np.abs(start[k] - n[k]).max()


def test_amp_plan_message_is_logged(gopro, tmp_path, monkeypatch):
    """Where AMP is on (simulated here: the CPU has none), the trainer keeps dygraph and says why, once."""
    monkeypatch.setattr(Trainer, "_setup_amp", lambda self: setattr(self, "amp", True) or setattr(self, "scaler", None))
    monkeypatch.setattr(Trainer, "_autocast", lambda self, level=None: paddle.amp.auto_cast(enable=False))
    t = Trainer(mimo_cfg(gopro, tmp_path, iters=1), device="cpu")
    assert t.static_step is None
    t.fit()
    assert STATIC_LINE not in _log(t)
    assert _log(t).count("train.cpu_static: AMP is on, so the training step runs in dygraph") == 1


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU launch test uses gloo on Linux")
def test_two_process_launch_with_the_static_step(gopro, tmp_path):
    """python -m paddle.distributed.launch --nproc_per_node 2 train.py (MIMOUNet, cpu_static true): both cards
    take the static step and end with identical weights."""
    out = tmp_path / "run"
    overrides = ["network.num_res=1", "data.num_workers=0", f"data.train.root={gopro}/train", "data.val=null",
                 "train.stages=[{iters: 3, batch_size: 4, patch_size: 32}]", "train.max_minutes=null",
                 "train.cpu_static=true", "output.checkpoint_freq=3", f"output.model_dir={out}/model",
                 f"output.log_dir={out}/logs", "log.print_freq=1", "log.progress_bar=false"]
    run = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                          "--log_dir", str(tmp_path / "launch"), os.path.join(ROOT, "train.py"),
                          "-c", os.path.join(ROOT, "configs", "mimo_unet_lite.yml"), "--device", "cpu",
                          "-o", *overrides], capture_output=True, text=True, cwd=tmp_path, timeout=400)
    logs = {f: (tmp_path / "launch" / f).read_text() for f in os.listdir(tmp_path / "launch")}
    assert run.returncode == 0, run.stdout[-3000:] + "".join(v[-2000:] for v in logs.values())
    log = (out / "model" / "train.log").read_text()
    assert "global batch 4 (2 per card x 2 card(s)" in log
    assert STATIC_LINE in log and FAILED_LINE not in log
    assert not any(FAILED_LINE in text for text in logs.values())  # neither card fell back to dygraph
    assert "replica check: identical weights on all 2 cards" in log


# ------------------------------------------------------------------------------------------ benchmark backend
@pytest.mark.parametrize("model", sorted(bm.TRAIN_RECIPES))
def test_benchmark_train_config_honours_size_and_batch(model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    spec = {"model": model, "train_data": str(data), "warmup": 1, "repeat": 2, "folder": str(tmp_path),
            "height": 48, "width": 64, "train_batch": 3, "train_cpu_static": "false"}
    cfg, batch, size = bm.train_config(spec, ROOT)
    recipe = bm.TRAIN_RECIPES[model][0]
    from utils.config import load_config

    own = load_config(os.path.join(ROOT, recipe))
    assert batch == 3 and size == (48, 64)
    assert cfg["train"]["stages"] == [{"iters": 3, "batch_size": 3, "patch_size": 64}]
    assert cfg["train"]["loss"] == own["train"]["loss"] and cfg["network"]["name"] == model
    assert cfg["train"]["optimizer"] == own["train"]["optimizer"] and cfg["train"]["cpu_static"] is False
    assert cfg["data"]["train"]["root"] == str(data) and cfg["data"]["val"] is None
    cfg, batch, size = bm.train_config({**spec, "height": None, "width": None, "train_batch": None,
                                        "train_cpu_static": "auto"}, ROOT)
    stage = own["train"]["stages"][0]
    assert size == (stage["patch_size"],) * 2 and cfg["train"]["cpu_static"] == "auto"
    assert batch == (stage.get("micro_batch") or stage["batch_size"])


def test_benchmark_base_spec_keeps_the_recipe_size_unless_given():
    import argparse

    args = argparse.Namespace(size=None, threads=2, repeat=5, warmup=1, tile=0, tile_overlap=32, train_batch=2,
                              num_workers=None, train_data=None, cpu_static="false", onednn_ops="true")
    spec = bm.base_spec(args)
    assert (spec["height"], spec["width"], spec["train_size"]) == (256, 256, None)  # inference 256, train: recipe
    assert spec["train_batch"] == 2 and spec["train_cpu_static"] == "false" and spec["train_onednn_ops"] == "true"
    spec = bm.base_spec(argparse.Namespace(**{**vars(args), "size": [128, 96]}))
    assert (spec["height"], spec["width"], spec["train_size"]) == (128, 96, [128, 96])


def test_benchmark_train_backend_refuses_dae_with_its_reason(tmp_path):
    with pytest.raises(ValueError) as err:
        bm.train_config({"model": "DAE", "warmup": 1, "repeat": 1, "folder": str(tmp_path)}, ROOT)
    assert str(err.value) == ("no training recipe for DAE: DAE is the folded deployment form of DAE_BN "
                              "(tools/fold_dae.py); train DAE_BN")


def test_error_summary_finds_the_line_that_says_what_failed():
    wrapped = ("(External) \n{\n  ===== Error message in backward of GradNodePyLayer_B(0x55)=====\n"
               "  RuntimeError: (PreconditionNotMet) no kernel\n    more detail\n  At:\n    <stdin>(6): backward\n"
               "    /x/paddle/autograd/py_layer.py(340): backward\n  ======\n}\n (at /paddle/eager/node.cc:177)\n")
    assert cpu_static.error_summary(RuntimeError(wrapped)) == "RuntimeError: (PreconditionNotMet) no kernel"
    cpp = "C++ Traceback\n  0 f\nError Message Summary:\nInvalidArgumentError: bad dims [Hint: x] (at /p/a.cc:3)\n"
    assert cpu_static.error_summary(RuntimeError(cpp)) == "InvalidArgumentError: bad dims [Hint: x]"
    assert cpu_static.error_summary(ValueError("plain words")) == "plain words"


def test_known_cpu_kernel_ops_are_real_ops():
    """Every op given back to the CPU kernel has a builder there (a renamed op would break the rebuild)."""
    from paddle import _pir_ops

    missing = [op for op in cpu_static.CPU_KERNEL_OPS if op != "multiply_grad" and not hasattr(_pir_ops, op)]
    assert not missing
