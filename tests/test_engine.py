"""The training engine: config checks, stages, resume, checkpoints, VisualDL, CLI, two-process launch."""
import copy
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

from networks import build_network
from utils.checkpoint import load_weights, network_config_for
from utils.cli import UserError
from utils.config import ConfigError
from utils.engine import IterationBatchSampler, StagePlan, Trainer, resolve_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_NET = {"name": "MIRNet_v2", "n_feat": 8, "n_RRG": 1, "n_MRB": 1}


def tiny_cfg(lite, out, **train):
    cfg = {
        "seed": 3,
        "network": dict(TINY_NET),
        "data": {"train": {"name": "PairedImageDataset", "root": str(lite / "SIDD_patches" / "train_mini"),
                           "geometric_augs": True, "cache": True},
                 "val": {"name": "SIDDValidationBlocks", "root": str(lite / "SIDD_val"), "max_images": 2}},
        "train": {"stages": [{"iters": 3, "batch_size": 2, "patch_size": 16},
                             {"iters": 3, "batch_size": 1, "patch_size": 24}],
                  "optimizer": {"name": "Adam", "lr": 1e-3},
                  "scheduler": {"name": "CosineAnnealingRestartCyclicLR", "periods": [2, 4],
                                "restart_weights": [1, 1], "eta_mins": [2e-3, 1e-5]},
                  "grad_clip": 0.5, "ema_decay": 0.9, "mixup": {"enable": True}},
        "val": {"freq": 3, "log_images": 1},
        "output": {"model_dir": str(out / "model"), "log_dir": str(out / "logs"), "checkpoint_freq": 3},
        "log": {"print_freq": 2, "progress_bar": False},
    }
    cfg["train"].update(train)
    return cfg


def test_config_unknown_keys_are_refused(sidd_lite, tmp_path):
    good = tiny_cfg(sidd_lite, tmp_path)
    resolve_config(good)
    bad_cases = [
        ("", "epochs", 3, "unknown key 'epochs'"),
        ("train", "lr_scheduler", {}, "unknown key 'lr_scheduler' in train"),
        ("train.mixup", "alpha", 1, "in train.mixup"),
        ("output", "model_path", "x", "did you mean 'model_dir'"),
        ("log", "freq", 1, "in log"),
    ]
    for section, key, value, message in bad_cases:
        cfg = copy.deepcopy(good)
        node = cfg
        for part in filter(None, section.split(".")):
            node = node[part]
        node[key] = value
        with pytest.raises(ConfigError, match=message):
            resolve_config(cfg)
    cfg = copy.deepcopy(good)
    cfg["train"]["stages"][0]["batch"] = 4
    with pytest.raises(ConfigError, match="train.stages.0"):
        resolve_config(cfg)
    cfg = copy.deepcopy(good)
    cfg["train"]["optimizer"] = {"name": "SGD", "lr": 0.1, "betas": [0.9, 0.99]}
    with pytest.raises(ConfigError, match="'betas' in train.optimizer"):
        resolve_config(cfg)
    cfg = copy.deepcopy(good)
    cfg["train"]["stages"][1]["iters"] = 0
    with pytest.raises(ConfigError, match="positive integer"):
        resolve_config(cfg)
    for value in ("yes", 1, None):
        cfg = copy.deepcopy(good)
        cfg["train"]["cpu_static"] = value
        with pytest.raises(ConfigError, match=f"train.cpu_static must be auto, true or false, got {value!r}"):
            resolve_config(cfg)
    cfg = copy.deepcopy(good)
    cfg["network"]["n_feats"] = 8
    with pytest.raises(ConfigError, match="n_feats"):
        Trainer(cfg, device="cpu")


def test_sampler_is_a_function_of_seed_and_iteration():
    plan = StagePlan([{"iters": 5, "batch_size": 4}, {"iters": 5, "batch_size": 2}])
    full = list(IterationBatchSampler(7, 11, plan, 0, 10))
    assert [len(b) for b in full] == [4] * 5 + [2] * 5
    # a sampler started mid-run yields the same batches; two cards split each batch
    assert list(IterationBatchSampler(7, 11, plan, 4, 10)) == full[4:]
    halves = [list(IterationBatchSampler(7, 11, plan, 0, 10, rank=r, world_size=2)) for r in (0, 1)]
    assert all(a + b == f for a, b, f in zip(*halves, full))
    # every epoch visits every sample once
    indices = [i for b in full for i, _ in b]
    assert sorted(indices[:7]) == list(range(7)) and sorted(indices[7:14]) == list(range(7))
    assert list(IterationBatchSampler(7, 12, plan, 0, 10)) != full


def test_stage_boundary_changes_patch_and_batch_exactly(sidd_lite, tmp_path):
    cfg = tiny_cfg(sidd_lite, tmp_path, max_iters=5)
    cfg["data"]["val"] = None
    t = Trainer(cfg, device="cpu", record_history=True)
    t.fit()
    assert [h["shape"] for h in t.history] == [(2, 3, 16, 16)] * 3 + [(1, 3, 24, 24)] * 2
    assert [h["iter"] for h in t.history] == [1, 2, 3, 4, 5]
    # the official cyclic cosine: lr(i) rises from 1e-3 to 2e-3 over the first period, then restarts
    np.testing.assert_allclose([h["lr"] for h in t.history][:4], [1e-3, 1.5e-3, 2e-3, 1e-3 * (1 + np.cos(
        np.pi / 4)) / 2 + 1e-5 * (1 - (1 + np.cos(np.pi / 4)) / 2)], rtol=1e-6)


def test_time_budget_stops_at_a_logged_iteration(sidd_lite, tmp_path):
    t = Trainer(tiny_cfg(sidd_lite, tmp_path, max_minutes=1e-6), device="cpu")
    t.fit()
    assert t.iter == 2  # the first logging point (print_freq 2)
    assert sorted(f for f in os.listdir(tmp_path / "model") if f.endswith((".pdstates", ".pdparams"))) == [
        "model_best.pdparams", "model_latest.pdparams", "state_iter00000002.pdstates"]
    assert "time budget" in (tmp_path / "model" / "train.log").read_text()


def test_resume_continues_exactly(sidd_lite, tmp_path):
    full = Trainer(tiny_cfg(sidd_lite, tmp_path / "a"), device="cpu", record_history=True)
    final = full.fit()
    first = Trainer(tiny_cfg(sidd_lite, tmp_path / "b", max_iters=4), device="cpu", record_history=True)
    first.fit()
    with pytest.raises(UserError, match="--resume auto"):
        Trainer(tiny_cfg(sidd_lite, tmp_path / "b"), device="cpu")
    second = Trainer(tiny_cfg(sidd_lite, tmp_path / "b"), device="cpu", resume="auto", record_history=True)
    assert second.iter == 4  # stopped in the middle of the second stage
    resumed_final = second.fit()
    losses = [h["loss"] for h in full.history]
    assert len(losses) == 6
    np.testing.assert_allclose([h["loss"] for h in first.history + second.history], losses, rtol=0, atol=1e-5)
    # different data or different weights would show: the losses are not all alike
    assert max(losses) - min(losses) > 1e-3
    a, b = full.net.state_dict(), second.net.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert resumed_final == pytest.approx(final, abs=1e-4)


def test_outputs_checkpoints_and_visualdl(sidd_lite, tmp_path):
    from visualdl import LogReader

    cfg = tiny_cfg(sidd_lite, tmp_path)
    cfg["output"]["keep_last"] = 1
    t = Trainer(cfg, device="cpu")
    t.fit()
    model_dir = tmp_path / "model"
    assert sorted(os.listdir(model_dir)) == ["config.yml", "curves.png", "model_best.pdparams",
                                             "model_latest.pdparams", "state_iter00000006.pdstates", "train.log",
                                             "val_images"]
    net_cfg = network_config_for(str(model_dir / "model_latest.pdparams"))
    assert net_cfg == TINY_NET
    for name in ("model_latest.pdparams", "model_best.pdparams"):
        load_weights(build_network(net_cfg), str(model_dir / name))
    # the EMA weights are the ones written for deployment
    latest = paddle.load(str(model_dir / "model_latest.pdparams"))
    key = next(iter(latest))
    np.testing.assert_array_equal(latest[key].numpy(), t.ema_net.state_dict()[key].numpy())
    log = (model_dir / "train.log").read_text()
    assert "iter: 2/6, lr: " in log and "avg_reader_cost: " in log and " images/sec, eta: " in log
    assert "validation input (no restoration)" in log
    # VisualDL: scalars and images at advancing global steps; a resumed run appends to the same file
    Trainer(tiny_cfg(sidd_lite, tmp_path, max_iters=None, stages=[
        {"iters": 3, "batch_size": 2, "patch_size": 16}, {"iters": 5, "batch_size": 1, "patch_size": 24}]),
        device="cpu", resume="auto").fit()
    files = os.listdir(tmp_path / "logs")
    assert files == ["vdlrecords.train.log"]
    reader = LogReader(file_path=str(tmp_path / "logs" / files[0]))
    steps = lambda kind, tag: [r.id for r in reader.get_data(kind, tag)]  # noqa: E731
    assert steps("scalar", "train/loss") == [2, 4, 6, 8]
    assert steps("scalar", "train/lr") == [2, 4, 6, 8]
    assert steps("scalar", "val/psnr") == [3, 6, 8] and steps("scalar", "val/ssim") == [3, 6, 8]
    assert steps("image", reader.get_tags()["image"][0]) == [3, 6, 8]


def test_micro_batches_accumulate_to_the_full_batch_step(sidd_lite, tmp_path):
    runs = []
    for micro in (None, 1):
        cfg = tiny_cfg(sidd_lite, tmp_path / str(micro), max_iters=3, mixup={"enable": False}, grad_clip=None)
        cfg["train"]["stages"][0]["micro_batch"] = micro
        cfg["data"]["val"] = None
        t = Trainer(cfg, device="cpu", record_history=True)
        t.fit()
        runs.append([h["loss"] for h in t.history])
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)


_TRAIN_AND_REPORT = """
import json, sys, yaml
sys.path.insert(0, {root!r})
from utils.engine import Trainer
t = Trainer(yaml.safe_load(open({cfg!r})), device='cpu', record_history=True)
t.fit()
import multiprocessing
print(json.dumps({{"losses": [h["loss"] for h in t.history],
                  "workers_alive": len(multiprocessing.active_children())}}))
"""


def test_worker_processes_give_the_same_batches(sidd_lite, tmp_path):
    """The same losses with 0 and 2 data workers, and no worker outlives fit() (left alive, workers hold the
    process's inherited file descriptors: a later subprocess's pipes never reach end-of-file).  Each run is its
    own process, as a training run is."""
    import json

    import yaml

    runs = []
    for workers in (0, 2):
        cfg = tiny_cfg(sidd_lite, tmp_path / str(workers), max_iters=4)
        cfg["data"].update(val=None, num_workers=workers)
        cfg_path = tmp_path / f"cfg{workers}.yml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        child = subprocess.run([sys.executable, "-c", _TRAIN_AND_REPORT.format(root=ROOT, cfg=str(cfg_path))],
                               capture_output=True, text=True, timeout=300)
        assert child.returncode == 0, child.stderr[-2000:]
        report = json.loads(child.stdout.strip().splitlines()[-1])
        assert report["workers_alive"] == 0, f"{report['workers_alive']} data-loader workers outlived fit()"
        runs.append(report["losses"])
    assert len(runs[0]) == 4
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-6)


def test_sgd_step_decay_and_amp_on_cpu(sidd_lite, tmp_path, caplog):
    cfg = tiny_cfg(sidd_lite, tmp_path, optimizer={"name": "SGD", "lr": 0.01, "momentum": 0.9},
                   scheduler={"name": "StepLR", "step_size": 2, "gamma": 0.5}, amp={"enable": True, "level": "O2"},
                   max_iters=5, ema_decay=0)
    cfg["data"]["val"] = None
    t = Trainer(cfg, device="cpu", record_history=True)
    t.fit()
    assert isinstance(t.optimizer, paddle.optimizer.Momentum)
    np.testing.assert_allclose([h["lr"] for h in t.history], [0.01, 0.01, 0.005, 0.005, 0.0025])
    assert not t.amp and all(p.dtype == paddle.float32 for p in t.net.parameters())


def _kill_during_second_checkpoint(cfg_path):
    """Child process: train, and die (SIGKILL) halfway through writing the second resume state."""
    return f"""
import os, signal, sys
sys.path.insert(0, {ROOT!r})
import paddle, yaml
import utils.fileio
real_save = paddle.save
calls = []
def dying_save(obj, path, *a, **k):
    if str(path).endswith('.pdstates'):
        calls.append(path)
        if len(calls) == 2:
            real_save(obj, path, *a, **k)
            data = open(path, 'rb').read()
            open(path, 'wb').write(data[:len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, path, *a, **k)
paddle.save = dying_save
from utils.engine import Trainer
Trainer(yaml.safe_load(open({str(cfg_path)!r})), device='cpu').fit()
"""


def test_kill_during_checkpoint_write_keeps_previous_one(sidd_lite, tmp_path):
    import yaml

    cfg = tiny_cfg(sidd_lite, tmp_path)
    cfg["data"]["val"] = None
    cfg_path = tmp_path / "cfg.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    child = subprocess.run([sys.executable, "-c", _kill_during_second_checkpoint(cfg_path)], capture_output=True,
                           text=True)
    assert child.returncode == -9, child.stderr[-2000:]
    model_dir = tmp_path / "model"
    leftovers = [f for f in os.listdir(model_dir) if f.startswith(".")]
    assert leftovers  # the half-written temporary file is there, but under a hidden temporary name
    assert sorted(f for f in os.listdir(model_dir) if not f.startswith(".")) == [
        "config.yml", "model_latest.pdparams", "state_iter00000003.pdstates", "train.log"]
    load_weights(build_network(TINY_NET), str(model_dir / "model_latest.pdparams"))
    t = Trainer(cfg, device="cpu", resume="auto")
    assert t.iter == 3
    assert not [f for f in os.listdir(model_dir) if f.startswith(".")]  # the killed process's temporary is gone
    t.fit()
    assert "state_iter00000006.pdstates" in os.listdir(model_dir)


def test_ctrl_c_says_where_to_resume_and_the_command_resumes(sidd_lite, tmp_path):
    """SIGINT to the whole process group, as Ctrl-C in a terminal (data-loader workers included): exit status 130,
    the state to resume from and the command on stderr and in train.log; that command continues the run."""
    import shlex
    import signal
    import time

    import yaml

    cfg = tiny_cfg(sidd_lite, tmp_path, stages=[{"iters": 2000, "batch_size": 1, "patch_size": 16}])
    cfg["data"].update(val=None, num_workers=2)
    cfg["output"]["checkpoint_freq"] = 2
    cfg_path = tmp_path / "cfg.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    model_dir = tmp_path / "model"
    # SIGINT as a terminal gives it: a library loaded by an earlier test may have set this process's SIGINT to
    # "ignore", which a child inherits (Python then installs no KeyboardInterrupt handler and the run goes on)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), "-c", str(cfg_path), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120

    def saved():  # a resume state from iteration 4 on (older ones are rotated away as the run goes on)
        names = os.listdir(model_dir) if model_dir.is_dir() else []
        return any(re.fullmatch(r"state_iter(\d+)\.pdstates", n) and int(n[10:18]) >= 4 for n in names)

    while not saved() and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert lines[-1].startswith("interrupted: at iteration ") and " with: python train.py " in lines[-1], lines
    state = re.search(r"resume from (state_iter(\d+)\.pdstates)", lines[-1])
    assert state and (model_dir / state.group(1)).is_file()
    assert lines[-1].split(": ", 1)[1] in (model_dir / "train.log").read_text()
    command = shlex.split(lines[-1].split(" with: ", 1)[1])
    assert command[0] == "python" and command[-1] == "--resume"
    resumed = subprocess.run([sys.executable] + command[1:] + ["-o", f"+train.max_iters={int(state.group(2)) + 2}"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at iteration {int(state.group(2))}" in resumed.stdout


def _train_cli(args, capsys):
    """Run train.py's main() as the script does; returns (exit status, stderr lines)."""
    import train
    from utils.cli import run_main

    with pytest.raises(SystemExit) as exit_info:
        run_main(train.main, args)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_train_script_one_line_errors(sidd_lite, tmp_path, capsys):
    cfg = os.path.join(ROOT, "configs", "mirnet_v2_lite.yml")
    assert _train_cli(["-c", cfg, "-o", "train.optimiser.lr=1"], capsys) == (2, [
        "error: unknown config key 'train.optimiser.lr'; did you mean 'train.optimizer.lr'? (prefix the key with "
        "'+' to add a new one)"])
    code, err = _train_cli(["-c", cfg, "-o", f"data.train.root={tmp_path}/none", f"output.model_dir={tmp_path}/m"],
                           capsys)
    assert code == 2 and err[-1].startswith("error: data.train: data folder not found")
    code, err = _train_cli(["-c", cfg, "--resume", str(tmp_path / "missing.pdstates")], capsys)
    assert code == 2 and err == [f"error: --resume: file not found: {tmp_path / 'missing.pdstates'}"]
    code, err = _train_cli(["-c", cfg, "--device", "gpu:7", "-o", f"output.model_dir={tmp_path}/m"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: device 'gpu:7'")


def test_train_help_names_the_device_default(capsys):
    from utils.engine.trainer import train_main

    with pytest.raises(SystemExit):
        train_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: auto, or the config's device)" in text and "None" not in text


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU launch test uses gloo on Linux")
def test_two_process_launch_on_cpu(sidd_lite, tmp_path):
    """python -m paddle.distributed.launch --nproc_per_node 2 train_denoising_4cards.py -o ... (gloo on CPU)."""
    out = tmp_path / "run"
    overrides = ["network.n_feat=8", "network.n_RRG=1", "network.n_MRB=1", "data.num_workers=0",
                 f"data.train.root={sidd_lite}/SIDD_patches/train_mini",
                 f"data.val={{type: PairedImageDataset, root: {sidd_lite}/SIDD_patches/val_mini, max_images: 3}}",
                 "train.stages=[{iters: 2, batch_size: 4, patch_size: 16}, {iters: 1, batch_size: 2, patch_size: 24}]",
                 "val.freq=2", "output.checkpoint_freq=2", f"output.model_dir={out}/model",
                 f"output.log_dir={out}/logs", "log.print_freq=1", "log.progress_bar=false"]
    run = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                          "--log_dir", str(tmp_path / "launch"), os.path.join(ROOT, "train_denoising_4cards.py"),
                          "--device", "cpu", "-o", *overrides], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    logs = {f: (tmp_path / "launch" / f).read_text() for f in os.listdir(tmp_path / "launch")}
    assert run.returncode == 0, run.stdout[-3000:] + "".join(v[-2000:] for v in logs.values())
    log = (out / "model" / "train.log").read_text()
    assert "global batch 4 (2 per card x 2 card(s)" in log and "global batch 2 (1 per card x 2 card(s)" in log
    assert "replica check: identical weights on all 2 cards" in log
    assert "(3 images)" in log  # validation split across the cards, then summed
    assert sorted(os.listdir(out / "model")) == ["config.yml", "curves.png", "model_best.pdparams",
                                                 "model_latest.pdparams", "state_iter00000002.pdstates",
                                                 "state_iter00000003.pdstates", "train.log", "val_images"]


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU launch test uses gloo on Linux")
@pytest.mark.parametrize("card", [1, 0])
def test_two_process_launch_shows_the_failing_cards_own_error(sidd_lite, tmp_path, card):
    """One card finds an unreadable validation image (its share of the set) while the other goes on and waits for
    it in a collective: the user sees the failing card's own error line, no traceback, and every card exits
    non-zero with an error line."""
    import shutil

    val = tmp_path / "val"
    shutil.copytree(sidd_lite / "SIDD_patches" / "val_mini", val)
    broken = sorted(os.listdir(val / "input"))[card]  # image i is read by card i % 2
    (val / "input" / broken).write_bytes(b"not an image")
    out = tmp_path / "run"
    overrides = ["network.n_feat=8", "network.n_RRG=1", "network.n_MRB=1", "data.num_workers=0",
                 f"data.train.root={sidd_lite}/SIDD_patches/train_mini",
                 f"data.val={{type: PairedImageDataset, root: {val}}}",
                 "train.stages=[{iters: 4, batch_size: 4, patch_size: 16}]", f"output.model_dir={out}/model",
                 f"output.log_dir={out}/logs", "log.progress_bar=false", "log.visualdl=false"]
    run = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                          "--log_dir", str(tmp_path / "launch"), os.path.join(ROOT, "train_denoising_4cards.py"),
                          "--device", "cpu", "-o", *overrides], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    console = run.stdout + run.stderr
    logs = {f: (tmp_path / "launch" / f).read_text() for f in ("workerlog.0", "workerlog.1")}
    assert run.returncode != 0, console[-3000:]
    assert "Traceback" not in console and "TIMEOUT" not in console, console[-3000:]
    own = [ln for ln in logs[f"workerlog.{card}"].splitlines() if ln.startswith("error: ")]
    assert len(own) == 1 and own[0].startswith("error: data.val: cannot read image") and broken in own[0], logs
    relayed = own[0].replace("error: ", f"error: card {card} of 2 stopped: ")
    assert own[0] in console or relayed in console, console[-3000:]
    assert logs[f"workerlog.{1 - card}"].strip().splitlines()[-1] == relayed
    for name, text in logs.items():  # every card ends on an error line of its own, without a traceback
        assert "Traceback" not in text and text.strip().splitlines()[-1].startswith("error: "), (name, text[-2000:])
