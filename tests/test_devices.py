"""Devices and precision: device resolution on simulated machines (GPU / NPU present or absent, launcher-assigned
cards), one-line errors from the scripts, AMP configuration and its wiring in the engine, Paddle Inference settings
for GPUs (TensorRT) and custom devices built without the device, the TIPC-on-NPU rewrite."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

import infer
from tools import alignment as alignment_tool
from utils import device as device_mod
from utils.amp import amp_plan, check_amp_config
from utils.cli import UserError
from utils.config import ConfigError
from utils.deploy import accelerators as idev
from utils.deploy.runners import predictor_config
from utils.device import DeviceError, available_devices, cpu_threads, describe, launcher_card, resolve_device
from utils.engine import Trainer, resolve_config
from utils.engine import trainer as engine_mod

from conftest import one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = {"cpu": 1}
NPU8 = {"cpu": 1, "npu": 8}
GPU2_NPU8 = {"cpu": 1, "gpu": 2, "npu": 8}
LAUNCHED = {"PADDLE_TRAINERS_NUM": "4", "FLAGS_selected_npus": "2", "FLAGS_selected_gpus": "1"}


# ------------------------------------------------------------------------------------------ device resolution
def test_resolution_with_and_without_cards():
    # a plugin or CUDA build that sees no card is skipped by auto and named precisely when asked for
    assert resolve_device("auto", {"cpu": 1, "gpu": 0, "npu": 4}) == "npu"
    assert resolve_device("auto", {"cpu": 1, "npu": 0}) == "cpu"
    with pytest.raises(DeviceError, match=r"supports npu but sees no card \(check npu-smi info and "
                                          r"ASCEND_RT_VISIBLE_DEVICES\)"):
        resolve_device("npu", {"cpu": 1, "npu": 0})
    with pytest.raises(DeviceError, match="supports gpu but sees no card .*CUDA_VISIBLE_DEVICES"):
        resolve_device("gpu:0", {"cpu": 1, "gpu": 0})
    # aliases and other plugins
    assert resolve_device("ascend:7", NPU8) == "npu:7" and resolve_device("cuda", GPU2_NPU8) == "gpu"
    assert resolve_device("mlu:1", {"cpu": 1, "mlu": 2}) == "mlu:1"
    with pytest.raises(DeviceError, match="plugin that registers the 'mlu' device type"):
        resolve_device("mlu", NPU8)
    with pytest.raises(DeviceError, match=r"available: cpu, npu x8\); to use it, install the CUDA build .*"
                                          r"paddlepaddle-gpu==3\.3\.1"):
        resolve_device("gpu", NPU8)
    assert describe({"cpu": 1, "gpu": 0, "npu": 2}) == "cpu, gpu (no card visible), npu x2"


def test_simulated_detection_keeps_card_counts():
    assert available_devices(cuda_count=0, custom_types=[("npu", 0), "mlu"]) == {"cpu": 1, "mlu": 1}
    assert available_devices(cuda_count=0, custom_types=[("npu", 0)], include_empty=True) == {"cpu": 1, "npu": 0}
    assert available_devices(cuda_count=4, custom_types=[]) == {"cpu": 1, "gpu": 4}


def test_cpu_threads_use_the_cores_unless_told_otherwise(monkeypatch):
    assert cpu_threads(env={}, cores=16) == 16
    assert cpu_threads(env={"OMP_NUM_THREADS": "1"}, cores=16) == 16  # what importing Paddle sets
    assert cpu_threads(env={"OMP_NUM_THREADS": "3"}, cores=16) == 3
    assert cpu_threads(env={"PADDLE_TRAINERS_NUM": "4"}, cores=16) == 4  # 4 CPU processes share the cores
    assert cpu_threads(env={"PADDLE_TRAINERS_NUM": "8", "PADDLE_LOCAL_SIZE": "2"}, cores=16) == 8
    assert cpu_threads(env={"PADDLE_LOCAL_SIZE": "4"}, cores=2) == 1
    assert cpu_threads(env={}) == len(os.sched_getaffinity(0))
    calls = []
    monkeypatch.setattr(paddle.base.core, "set_num_threads", calls.append)
    monkeypatch.setattr(device_mod, "cpu_threads", lambda: 5)
    assert device_mod.set_device("cpu") == "cpu" and calls == [5]


# ------------------------------------------------------------------------------------------ CPU math libraries
AMD_ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC\n" \
           "flags\t\t: fpu sse sse2 avx fma avx2 bmi2\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n"
AMD_NO_AVX2 = AMD_ZEN3.replace(" avx2", "")
INTEL = AMD_ZEN3.replace("AuthenticAMD", "GenuineIntel").replace("bmi2", "bmi2 avx512f")
OTHER = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm\nCPU implementer\t: 0x41\n"


def test_cpu_math_setup_chosen_per_cpu_vendor():
    env = {}
    assert device_mod.configure_cpu_math(env, AMD_ZEN3) == {"MKL_DEBUG_CPU_TYPE": "5"}
    assert env == {"MKL_DEBUG_CPU_TYPE": "5"}
    for cpuinfo in (INTEL, AMD_NO_AVX2, OTHER, ""):  # Intel, older AMD, ARM, nothing readable: left alone
        env = {"PATH": "/bin"}
        assert device_mod.configure_cpu_math(env, cpuinfo) == {} and env == {"PATH": "/bin"}


def test_cpu_math_setup_never_overrides_the_users_value():
    for own in ("1", "", "5"):
        env = {"MKL_DEBUG_CPU_TYPE": own}
        assert device_mod.configure_cpu_math(env, AMD_ZEN3) == {} and env == {"MKL_DEBUG_CPU_TYPE": own}


def test_cpu_math_setup_happens_before_the_scripts_main(monkeypatch):
    """run_main sets the variable before main() runs (where the scripts first import Paddle); importing the
    project changes nothing."""
    from utils import cli

    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    monkeypatch.setattr(device_mod, "cpu_math_settings", lambda cpuinfo=None: {"MKL_DEBUG_CPU_TYPE": "5"})
    seen = []
    cli.run_main(lambda argv: seen.append(os.environ.get("MKL_DEBUG_CPU_TYPE")))
    assert seen == ["5"]
    code = ("import os, sys; sys.path.insert(0, %r); os.environ.pop('MKL_DEBUG_CPU_TYPE', None); "
            "import utils, utils.cli, utils.device, utils.engine, utils.deploy.benchmark; "
            "print(os.environ.get('MKL_DEBUG_CPU_TYPE'))" % ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1:] == ["None"], out.stderr[-2000:]


def test_launcher_assigned_card():
    """Under paddle.distributed.launch a device without id is the process's own card; a contradicting id is
    refused in multi-process runs (all processes would share one card), allowed when it matches."""
    assert launcher_card("npu", LAUNCHED) == 2 and launcher_card("npu", {}) is None
    assert launcher_card("gpu", {"FLAGS_selected_gpus": "3,4"}) == 3
    assert resolve_device("npu", NPU8, env=LAUNCHED) == "npu"
    assert resolve_device("npu:2", NPU8, env=LAUNCHED) == "npu:2"
    with pytest.raises(DeviceError, match=r"gave this process npu:2 \(FLAGS_selected_npus\); pass --device npu "
                                          r"without an id"):
        resolve_device("npu:0", NPU8, env=LAUNCHED)
    single = {"PADDLE_TRAINERS_NUM": "1", "FLAGS_selected_gpus": "1"}
    assert resolve_device("gpu:0", GPU2_NPU8, env=single) == "gpu:0"  # one process: the user's choice stands
    assert idev.card_index("npu", "", LAUNCHED) == 2 and idev.card_index("npu", "5", LAUNCHED) == 5
    assert idev.card_index("gpu", None, {}) == 0


def _png(path):
    cv2.imwrite(str(path), np.full((8, 8, 3), 128, np.uint8))
    return str(path)


def test_missing_npu_from_predict_script_is_one_line(tmp_path):
    img = _png(tmp_path / "a.png")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "predict.py"), img, "--weights",
                          str(tmp_path / "w.pdparams"), "--device", "npu:0"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith("error: device 'npu:0' is not available in this Paddle build (available: cpu)")
    assert "paddle-custom-npu" in lines[0] and "CANN" in lines[0]


def _legacy_program_dir(folder, feed="image"):
    """A model folder holding a minimal legacy program (one feed op) and a params file: enough for
    find_program and for building a Config, not for running."""
    from paddle.base.proto import framework_pb2

    os.makedirs(folder, exist_ok=True)
    desc = framework_pb2.ProgramDesc()
    op = desc.blocks.add(idx=0, parent_idx=-1).ops.add(type="feed")
    op.outputs.add(parameter="Out", arguments=[feed])
    with open(os.path.join(folder, "inference.pdmodel"), "wb") as f:
        f.write(desc.SerializeToString())
    with open(os.path.join(folder, "inference.pdiparams"), "wb") as f:
        f.write(b"\0" * 8)
    with open(os.path.join(folder, "inference.yml"), "w") as f:
        f.write("size_multiple: 8\n")
    return str(folder)


def test_legacy_flags_and_missing_devices_in_infer_and_alignment(tmp_path, capsys):
    model = _legacy_program_dir(tmp_path / "model")
    err = one_line_error(capsys, infer.main, ["--model-dir", model, "--use_npu", "True"])
    assert err.startswith("error: device 'npu' is not available") and "paddle-custom-npu" in err
    err = one_line_error(capsys, infer.main, ["--model-dir", model, "--use-gpu", "True", "--use-npu", "True"])
    assert "contradict" in err
    err = one_line_error(capsys, infer.main, ["--model-dir", model, "--device", "cpu", "--use_tensorrt", "True"])
    assert "TensorRT runs on NVIDIA GPUs only" in err
    err = one_line_error(capsys, alignment_tool.main, ["record", "--backend", "paddle", "--model-dir", model,
                                                        "--device", "gpu:0", "--out", str(tmp_path / "r.npy")])
    assert err.startswith("error: device 'gpu:0' is not available") and "paddlepaddle-gpu" in err
    assert idev.legacy_device(None, False, None) == "cpu" and idev.legacy_device(None, None, True) == "npu"
    assert idev.legacy_device("npu:1", True, None) == "npu:1" and idev.legacy_device() == "auto"


# --------------------------------------------------------------------------------------- Paddle Inference
class RecordingConfig:
    """Stands in for paddle.inference.Config: records every call."""

    def __init__(self, *files):
        self.files, self.calls = files, []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, args))


def test_accelerator_settings_without_the_device():
    from paddle.inference import PrecisionType as P

    calls, what = idev.accelerator_settings("npu", 3, "fp16")
    assert calls == [("enable_custom_device", ("npu", 3, P.Half))] and what == "custom device npu:3, fp16"
    calls, what = idev.accelerator_settings("gpu", 1, "fp16")
    assert calls == [("enable_use_gpu", (idev.GPU_MEMORY_POOL_MB, 1, P.Half))] and "mixed-precision" in what
    trt = idev.TensorRTOptions(True, max_side=1536, max_batch=2)
    calls, what = idev.accelerator_settings("gpu", 0, "fp16", trt, input_name="image", multiple=8)
    assert [c[0] for c in calls] == ["enable_use_gpu", "enable_tensorrt_engine", "set_trt_dynamic_shape_info"]
    assert calls[0][1][2] == P.Float32 and calls[1][1][1:4] == (2, idev.TRT_MIN_SUBGRAPH, P.Half)
    assert calls[2][1] == ({"image": [1, 3, 8, 8]}, {"image": [2, 3, 1536, 1536]}, {"image": [1, 3, 512, 512]})
    assert what == "GPU 0, TensorRT fp16, sides up to 1536"
    for args, message in ((("npu", 0, "fp16", trt), "NVIDIA GPUs only"),
                          (("gpu", 0, "fp32", trt, "json"), "legacy inference.pdmodel"),
                          (("gpu", 0, "int8"), "precision int8 is not supported")):
        with pytest.raises(UserError, match=message):
            idev.accelerator_settings(*args)
    trt.check((2, 3, 1536, 700))
    with pytest.raises(UserError, match=r"shape \(1, 3, 1537, 10\) exceeds the TensorRT profile .*--tile 512"):
        trt.check((1, 3, 1537, 10))


@pytest.mark.parametrize("device,tensorrt,expected", [
    ("npu:2", False, [("enable_custom_device", ("npu", 2, "Half"))]),
    ("gpu", True, [("enable_use_gpu", (256, 1, "Float32")), ("enable_tensorrt_engine", None),
                   ("set_trt_dynamic_shape_info", ({"image": [1, 3, 8, 8]}, {"image": [1, 3, 2048, 2048]},
                                                   {"image": [1, 3, 512, 512]}))]),
])
def test_predictor_config_routes_devices(tmp_path, monkeypatch, device, tensorrt, expected):
    """The whole predictor configuration for a simulated GPU / NPU machine: only the device's calls (no CPU
    thread or oneDNN settings), then memory optimisation; a launcher-assigned card is used for 'gpu'."""
    from paddle import inference

    monkeypatch.setattr("utils.device.available_devices", lambda include_empty=False: GPU2_NPU8)
    monkeypatch.setattr(inference, "Config", RecordingConfig)
    monkeypatch.setenv("FLAGS_selected_gpus", "1")
    model = _legacy_program_dir(tmp_path / "m")
    precision = "fp16" if device.startswith("npu") else "fp32"
    config, what = predictor_config(model, device, precision=precision,
                                    tensorrt=idev.TensorRTOptions(tensorrt))
    names = [c[0] for c in config.calls]
    assert names == [e[0] for e in expected] + ["enable_memory_optim", "disable_glog_info"]
    for (name, args), (_, want) in zip(config.calls, expected):
        if want is not None:
            assert tuple(a.name if isinstance(a, inference.PrecisionType) else a for a in args) == want
    assert what.startswith(f"legacy program inference.pdmodel on {device}: ")


def test_real_config_accepts_the_custom_device_call(tmp_path):
    config = paddle.inference.Config(*[os.path.join(_legacy_program_dir(tmp_path), f)
                                       for f in ("inference.pdmodel", "inference.pdiparams")])
    assert idev.configure_accelerator(config, "npu", "0", "fp16") == "custom device npu:0, fp16"


# ------------------------------------------------------------------------------------------------ AMP
def test_amp_config_parsing():
    assert check_amp_config(None) == {"enable": False, "level": "O1", "dtype": "float16", "init_loss_scaling": 1024.0}
    assert check_amp_config({"enable": True, "level": "O2", "dtype": "bfloat16", "init_loss_scaling": 65536})[
        "init_loss_scaling"] == 65536.0
    bad = [({"level": "O3"}, "Paddle has no O3 level; use O2"), ({"level": "O0"}, "set enable: false"),
           ({"level": "o2"}, "upper case: O2"), ({"level": 2}, "must be O1 or O2"),
           ({"dtype": "fp16"}, "did you mean float16"), ({"dtype": "bf16"}, "did you mean bfloat16"),
           ({"dtype": "float32"}, "float16 or bfloat16, got 'float32'$"), ({"enable": "yes"}, "true or false"),
           ({"init_loss_scaling": 0}, "positive number"), ({"init_loss_scaling": True}, "positive number"),
           ({"init_loss_scaling": "1024"}, "positive number"), ({"scale": 1}, "unknown key 'scale'"), ([], "mapping")]
    for amp, message in bad:
        with pytest.raises(ConfigError, match=message):
            check_amp_config(amp)


def test_amp_plan_per_device():
    amp = check_amp_config({"enable": True, "level": "O2", "dtype": "float16"})
    cpu = amp_plan(amp, "cpu")
    assert not cpu["enable"] and "trains in float32" in cpu["warning"]
    npu = amp_plan(amp, "npu:0")
    assert npu["enable"] and npu["decorate"] and npu["master_weight"] and npu["scaler"] and npu["warning"] is None
    bf16 = amp_plan(check_amp_config({"enable": True, "level": "O1", "dtype": "bfloat16"}), "gpu")
    assert bf16["enable"] and not bf16["decorate"] and not bf16["scaler"]
    assert not amp_plan(check_amp_config({}), "gpu")["enable"]
    with pytest.raises(ConfigError, match="bfloat16 is not supported on gpu:0 .*compute capability 8.0"):
        amp_plan(check_amp_config({"enable": True, "dtype": "bfloat16"}), "gpu:0", lambda dtype, dev: False)


def _tiny_cfg(lite, out, amp):
    return {"seed": 1, "network": {"name": "MIRNet_v2", "n_feat": 8, "n_RRG": 1, "n_MRB": 1},
            "data": {"train": {"name": "PairedImageDataset", "root": str(lite / "SIDD_patches" / "train_mini"),
                               "cache": True}, "val": None},
            "train": {"stages": [{"iters": 2, "batch_size": 2, "patch_size": 16, "micro_batch": 1}],
                      "grad_clip": 0.5, "amp": amp},
            "output": {"model_dir": str(out / "model"), "log_dir": str(out / "logs"), "checkpoint_freq": 2},
            "log": {"print_freq": 1, "progress_bar": False, "visualdl": False}}


def test_amp_config_errors_reach_the_command_line(sidd_lite, tmp_path, capsys):
    import train

    cfg = _tiny_cfg(sidd_lite, tmp_path, {"enable": True, "level": "O3"})
    with pytest.raises(ConfigError, match="train.amp.level must be O1 or O2, got 'O3'"):
        resolve_config(cfg)
    err = one_line_error(capsys, train.main, ["-c", os.path.join(ROOT, "configs", "mirnet_v2_lite.yml"), "-o",
                                               "train.amp.dtype=half", f"output.model_dir={tmp_path}/m"])
    assert err.startswith("error: train.amp.dtype must be float16 or bfloat16, got 'half' (did you mean float16?)")


class FakeScaler:
    """Records the order of GradScaler calls; scales by 1 and steps the optimizer like the real one would."""
    events = []

    def __init__(self, init_loss_scaling, use_dynamic_loss_scaling):
        self.events.append(("init", init_loss_scaling, use_dynamic_loss_scaling))

    def scale(self, loss):
        self.events.append("scale")
        return loss

    def step(self, optimizer):
        self.events.append("step")
        optimizer.step()

    def update(self):
        self.events.append("update")

    def state_dict(self):
        return {"scale": 1.0}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_engine_wires_o2_master_weights_and_the_scaler(sidd_lite, tmp_path, monkeypatch, dtype):
    """With an accelerator simulated (the plan of 'npu:0'), O2 decorates with float32 master weights and
    float16 gets a dynamic scaler whose scale -> step -> update order holds across micro-batches."""
    decorated = []

    def fake_decorate(models, optimizers, **kwargs):
        decorated.append(kwargs)
        return models, optimizers

    real_plan = engine_mod.amp_plan
    monkeypatch.setattr(engine_mod, "amp_plan", lambda amp, device, supports: real_plan(amp, "npu:0", supports))
    monkeypatch.setattr(paddle.amp, "decorate", fake_decorate)
    monkeypatch.setattr(paddle.amp, "GradScaler", FakeScaler)
    FakeScaler.events = []
    amp = {"enable": True, "level": "O2", "dtype": dtype, "init_loss_scaling": 512}
    t = Trainer(_tiny_cfg(sidd_lite, tmp_path, amp), device="cpu")
    assert decorated == [{"level": "O2", "dtype": dtype, "master_weight": True, "save_dtype": "float32"}]
    if dtype == "bfloat16":
        assert t.scaler is None and FakeScaler.events == []
        return
    before = [p.numpy().copy() for p in t.net.parameters()]
    t.fit()
    assert FakeScaler.events == [("init", 512.0, True)] + ["scale", "scale", "step", "update"] * 2
    assert any(not np.array_equal(a, p.numpy()) for a, p in zip(before, t.net.parameters()))


# ------------------------------------------------------------------------------------------ TIPC on NPUs
TIPC_CONFIG = """===========================train_params===========================
model_name:MIRNet_V2
python:python3
gpu_list:-1
--device:cpu
train.max_iters:lite_train_lite_infer=20|whole_train_whole_infer=null
##
norm_train:train.py -c configs/mirnet_v2_lite.yml -o device=gpu
===========================infer_params===========================
inference:infer.py --save-dir ${TIPC_RUN_DIR}/infer
--use-gpu:True|False
--use_tensorrt:False|True
--precision:fp32|fp16
"""


def _tipc_npu(config, tmp_path, **env):
    env = dict(os.environ, TIPC_NPU_OUT=str(tmp_path / "npu"), PYTHON=sys.executable, **env)
    return subprocess.run(["bash", os.path.join(ROOT, "test_tipc", "test_train_inference_python_npu.sh"),
                           str(config), "lite_train_lite_infer"], capture_output=True, text=True, env=env, timeout=120)


def test_tipc_npu_rewrites_a_config_copy_and_refuses_without_npu(tmp_path):
    config = tmp_path / "train_infer_python.txt"
    config.write_text(TIPC_CONFIG)
    run = _tipc_npu(config, tmp_path, TIPC_NPU_REWRITE_ONLY="1")
    assert run.returncode == 0 and run.stdout.strip() == str(tmp_path / "npu" / "train_infer_python_npu.txt")
    got, want = open(run.stdout.strip()).read().splitlines(), TIPC_CONFIG.splitlines()
    changed = {i + 1: line for i, (line, old) in enumerate(zip(got, want)) if line != old}
    assert len(got) == len(want) and changed == {  # line positions matter to TIPC
        4: "gpu_list:0|0,1", 5: "--device:npu", 8: "norm_train:train.py -c configs/mirnet_v2_lite.yml -o device=npu",
        11: "--use-gpu:npu|False", 12: "--use_tensorrt:False"}
    assert config.read_text() == TIPC_CONFIG  # the original is untouched
    run = _tipc_npu(config, tmp_path, TIPC_NPU_REWRITE_ONLY="1", TIPC_NPU_CARDS="0,1,2,3")
    assert open(run.stdout.strip()).read().splitlines()[3] == "gpu_list:0,1,2,3"
    run = _tipc_npu(config, tmp_path, TIPC_NPU_CARDS="0;1")
    assert run.returncode == 2 and "TIPC_NPU_CARDS must look like 0|0,1" in run.stderr
    fake_main = tmp_path / "main.sh"
    fake_main.write_text("echo RAN\n")
    run = _tipc_npu(config, tmp_path, TIPC_MAIN_SCRIPT=str(fake_main))
    assert run.returncode == 1 and "RAN" not in run.stdout and len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith("error: this Paddle has no npu device") and "paddle-custom-npu" in run.stderr


def test_speed_config_measures_the_official_first_stages():
    """configs/mirnet_v2_speed.yml (the GPU/NPU speed figures) keeps training_1card.yml's network and the batch,
    patch and micro-batch of its first two stages; only the iteration counts are shortened."""
    from utils.config import load_config

    speed = resolve_config(load_config(os.path.join(ROOT, "configs", "mirnet_v2_speed.yml")))
    official = resolve_config(load_config(os.path.join(ROOT, "training_1card.yml")))
    assert speed["network"] == official["network"] and speed["data"]["val"] is None
    strip = [{k: v for k, v in s.items() if k != "iters"} for s in official["train"]["stages"][:2]]
    assert [{k: v for k, v in s.items() if k != "iters"} for s in speed["train"]["stages"]] == strip
    assert all(s["iters"] % speed["log"]["print_freq"] == 0 for s in speed["train"]["stages"])
