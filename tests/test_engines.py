"""The default CPU engine (``--backend auto``): its order, its fall-backs (OpenVINO absent, present, failing to
convert; an export made before OpenVINO support), the one line that says what runs, and the refusals (bf16 on
CPUs without it, unknown backends, an engine missing when forced).

A tiny network with the pipeline's edge padding is exported twice: as export_model.py writes it today
(``index_select`` padding, which OpenVINO reads) and as exports made before OpenVINO support padded (``pad3d``
with run-time paddings).  Engines that are not installed are simulated with monkeypatch."""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
import yaml

import infer
from networks.common import pad_to_multiple
from utils.deploy import runners
from utils.deploy.export import export_model
from utils.deploy.runners import DygraphRunner, PaddleRunner, make_runner
from utils.errors import EngineError, UserError

from conftest import one_line_error

TOL = 1e-4
ODD = (1, 3, 13, 21)
needs_openvino = pytest.mark.skipif(runners.openvino_module() is None, reason="openvino is not installed")


def _pad3d(x, m):
    """Edge padding as exports made before OpenVINO support wrote it: ``pad3d`` with run-time paddings."""
    if paddle.in_dynamic_mode():
        return F.pad(x, [0, -x.shape[3] % m, 0, -x.shape[2] % m], mode="replicate")
    hw = paddle.cast(paddle.shape(x)[2:4], "int32")
    pad = (m - hw % m) % m
    zero = paddle.zeros([1], "int32")
    return F.pad(x, paddle.concat([zero, pad[1:2], zero, pad[0:1]]), mode="replicate")


class _Padded(paddle.nn.Layer):
    size_multiple = 4

    def __init__(self, old=False):
        super().__init__()
        self.old, self.conv = old, paddle.nn.Conv2D(3, 3, 3, padding=1)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        y = _pad3d(x, 4) if self.old else pad_to_multiple(x, 4)
        return self.conv(F.avg_pool2d(y, 2, 2)).tile([1, 1, 2, 2])[:, :, :h, :w] + x


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(network, today's export, an export made before OpenVINO support, the same in the PIR format)."""
    paddle.seed(3)
    net, old_net = _Padded(), _Padded(old=True)
    old_net.set_state_dict(net.state_dict())
    net.eval()
    old_net.eval()
    root = tmp_path_factory.mktemp("engines")
    new, old, pir = (str(root / d) for d in ("new", "old", "pir"))
    export_model(net, {"name": "_Padded"}, new)
    export_model(old_net, {"name": "_Padded"}, old, onnx=True)
    export_model(net, {"name": "_Padded"}, pir, fmt="json")
    meta_path = os.path.join(old, "inference.yml")  # exports of that time record no OpenVINO check
    meta = yaml.safe_load(open(meta_path))
    recorded = meta.pop("openvino")
    with open(meta_path, "w") as f:
        yaml.safe_dump(meta, f)
    return net, new, old, pir, recorded


def _x(shape=ODD, seed=0):
    return np.random.RandomState(seed).rand(*shape).astype(np.float32)


def _close(runner, net, shape=ODD):
    x = _x(shape)
    return np.abs(runner(x) - DygraphRunner(net)(x)).max() <= TOL


# ------------------------------------------------------------------------------------------ the order
def test_auto_tries_the_engines_fastest_first(models, monkeypatch):
    _, new, _, pir, _ = models
    tried = []

    def fake(name, *args, **kwargs):
        tried.append(name)
        if name != "paddle":
            raise EngineError(f"{name} is out")
        return PaddleRunner(new, "cpu", 2)

    monkeypatch.setattr(runners, "_engine", fake)
    runner = make_runner("auto", new, "cpu", 2)
    assert tried == ["openvino", "paddle-openvino", "paddle"]
    assert runner.description.endswith("[--backend auto: skipped OpenVINO: openvino is out; skipped Paddle "
                                       "Inference's OpenVINO engine: paddle-openvino is out]")
    assert runners.auto_order(new, precision="bf16")[0] == ("openvino", "paddle")  # the engine runs fp32 only
    for kwargs, why in (({"device": "gpu:0"}, None), ({"enable_mkldnn": False}, "plain CPU kernels"),
                        ({"precision": "int8"}, "INT8 models")):
        order, notes = runners.auto_order(new, **kwargs)
        assert order == ("paddle",) and (why in notes[0] if why else not notes)
    order, notes = runners.auto_order(pir)
    assert order == ("paddle",) and "legacy program only" in notes[0]


@needs_openvino
def test_auto_runs_openvino_when_installed(models, capsys):
    net, new, _, _, _ = models
    meta = yaml.safe_load(open(os.path.join(new, "inference.yml")))
    assert meta["openvino"]["max_abs_diff"] <= TOL  # checked at export time
    runner = make_runner("auto", new, "cpu", 2)
    assert runner.engine == "openvino" and _close(runner, net)
    infer.main(["--model-dir", new, "--save-dir", str(os.path.join(new, "..", "o")), "--cpu-threads", "2"])
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("OpenVINO ") and "inference.pdmodel (Paddle frontend)" in first
    assert first.endswith("CPU pinning off [--backend auto: the fastest engine]"), first


def test_auto_without_openvino_takes_paddles_openvino_engine(models, monkeypatch, tmp_path):
    net, new, _, _, _ = models
    monkeypatch.setattr(runners, "openvino_module", lambda: None)
    monkeypatch.chdir(tmp_path)
    runner = make_runner("auto", new, "cpu", 2)
    assert not os.listdir(tmp_path)  # no ./__cache__ of the engine's compiled model left behind
    assert runner.engine == "paddle-openvino" and "bundled OpenVINO engine" in runner.description
    assert runner.description.endswith("[--backend auto: skipped OpenVINO: not installed (pip install openvino)]")
    assert _close(runner, net) and _close(runner, net, (2, 3, 8, 9))


@needs_openvino
def test_auto_when_openvino_fails_to_convert(models, monkeypatch):
    import openvino

    net, new, _, _, _ = models

    def broken(self, *args, **kwargs):
        raise RuntimeError("Check failed\nFail to convert some_op")

    monkeypatch.setattr(openvino.Core, "read_model", broken)
    runner = make_runner("auto", new, "cpu", 2)
    assert runner.engine == "paddle-openvino"
    assert "skipped OpenVINO: cannot convert inference.pdmodel: Fail to convert some_op]" in runner.description
    create = paddle.inference.create_predictor
    calls = []

    def first_fails(config):  # Paddle's OpenVINO engine (tried first) does not convert either; oneDNN then runs
        calls.append(config)
        if len(calls) == 1:
            raise RuntimeError("(Unavailable) Can't convert paddle model to openvino model.")
        return create(config)

    monkeypatch.setattr(paddle.inference, "create_predictor", first_fails)
    runner = make_runner("auto", new, "cpu", 2)
    assert runner.engine == "paddle" and len(calls) == 2 and _close(runner, net)
    assert "oneDNN + memory optimisation" in runner.description
    assert "skipped Paddle Inference's OpenVINO engine: cannot convert inference.pdmodel: (Unavailable) Can't " \
           "convert paddle model to openvino model." in runner.description


def test_export_made_before_openvino_support_falls_back_to_onednn(models, tmp_path, capsys):
    net, _, old, _, recorded = models
    if recorded is not None:  # export_model.py found that OpenVINO cannot read it
        assert "pad3d" in recorded["error"]
    runner = make_runner("auto", old, "cpu", 2)
    assert runner.engine == "paddle" and _close(runner, net)
    why = ("this export predates OpenVINO support (its pad3d ops do not convert): export it again with "
           "export_model.py")
    want = "OpenVINO and Paddle Inference's OpenVINO engine" if recorded is not None else \
        "Paddle Inference's OpenVINO engine"
    assert runner.description.endswith(f"[--backend auto: skipped {want}: {why}]"), runner.description
    err = one_line_error(capsys, infer.main, ["--model-dir", old, "--backend", "paddle-openvino"])
    assert err == f"error: --backend paddle-openvino cannot run here: Paddle Inference's OpenVINO engine: {why}"
    if recorded is not None:  # forced, OpenVINO reads the export's ONNX model instead
        runner = make_runner("openvino", old, "cpu", 2)
        assert "inference.onnx (ONNX frontend)" in runner.description and why in runner.description
        assert _close(runner, net)


def test_a_failed_export_check_leaves_the_openvino_engines_out(models, tmp_path):
    import shutil

    _, new, _, _, _ = models
    folder = str(tmp_path / "m")
    shutil.copytree(new, folder)
    meta = yaml.safe_load(open(os.path.join(folder, "inference.yml")))
    meta["openvino"] = {"version": "2026.4.1", "error": "OpenVINO 2026.4.1 differs from the network by 0.5"}
    with open(os.path.join(folder, "inference.yml"), "w") as f:
        yaml.safe_dump(meta, f)
    runner = make_runner("auto", folder, "cpu", 2)
    assert runner.engine == "paddle" and "export_model.py found that OpenVINO 2026.4.1 differs" in runner.description


def test_pir_export_runs_onednn_and_names_why(models):
    net, _, _, pir, _ = models
    runner = make_runner("auto", pir, "cpu", 2)
    assert runner.engine == "paddle" and "safe PIR configuration" in runner.description and _close(runner, net)
    assert runner.description.endswith("[--backend auto: the OpenVINO engines read the legacy program only "
                                       "(export with --format pdmodel)]")
    with pytest.raises(EngineError, match="reads the legacy program"):
        make_runner("paddle-openvino", pir, "cpu", 2)


# ------------------------------------------------------------------------ Paddle's OpenVINO engine hazard
def test_paddle_openvino_engine_outputs_are_checked(models):
    _, new, _, _, _ = models
    runner = PaddleRunner(new, "cpu", 2, openvino=True)
    x, y = _x(), _x(seed=1)
    runner.check_fresh(x, x + 1)
    runner.check_fresh(x, x + 1)  # the same input twice: the same output is right
    with pytest.raises(EngineError, match="returned the previous output again"):
        runner.check_fresh(y, x + 1)
    with pytest.raises(EngineError, match=r"failed on a 1 x 3 x 13 x 21 input \(it returned an output of shape"):
        runner.check_fresh(x, np.zeros((1, 3, 8, 8), np.float32))
    runner(x)
    with pytest.raises(EngineError, match="failed on a 1 x 3 x 4 x 0 input"):  # it would hand back the last output
        runner(np.zeros((1, 3, 4, 0), np.float32))


# ---------------------------------------------------------------------------------------- refusals
def test_bf16_refused_without_the_instructions(models, monkeypatch, capsys):
    _, new, _, _, _ = models
    monkeypatch.setattr(runners, "openvino_capabilities", lambda core: ["FP32", "INT8", "BIN"])
    monkeypatch.setattr(runners, "cpu_instructions", lambda: (False, False))
    for backend in ("auto", "openvino") if runners.openvino_module() else ():
        err = one_line_error(capsys, infer.main, ["--model-dir", new, "--precision", "bf16", "--backend", backend])
        assert "--precision bf16 needs a CPU with AVX512-BF16 or AMX; OpenVINO reports only FP32, INT8, BIN" in err
        assert err.endswith("would silently run fp32: use fp32")
    monkeypatch.setattr(runners, "openvino_module", lambda: None)
    for backend in ("auto", "paddle"):
        err = one_line_error(capsys, infer.main, ["--model-dir", new, "--precision", "bf16", "--backend", backend])
        assert "needs a CPU with AVX512-BF16 or AMX" in err and "oneDNN would emulate bfloat16" in err
    err = one_line_error(capsys, infer.main, ["--model-dir", new, "--precision", "bf16", "--backend",
                                              "paddle-openvino"])
    assert "OpenVINO engine runs fp32 here" in err


@needs_openvino
def test_bf16_asked_of_openvino_on_cpus_with_it(models, monkeypatch):
    import openvino

    _, new, _, _, _ = models
    seen = []
    compile_model = openvino.Core.compile_model

    def spy(self, model, device, props):
        seen.append(props)
        return compile_model(self, model, device, props)

    monkeypatch.setattr(runners, "openvino_capabilities", lambda core: ["FP32", "BF16"])
    monkeypatch.setattr(openvino.Core, "compile_model", spy)
    runner = make_runner("auto", new, "cpu", 2, precision="bf16")
    assert runner.engine == "openvino" and ", bf16, " in runner.description
    assert seen[-1]["INFERENCE_PRECISION_HINT"] == "bf16" and seen[-1]["ENABLE_CPU_PINNING"] is False


def test_unknown_backend_and_engines_missing_when_forced(models, monkeypatch, capsys):
    _, new, _, _, _ = models
    with pytest.raises(UserError, match=r"unknown backend 'tensorrt' \(choose from auto, openvino, paddle-openvino, "
                                        r"paddle, onnx\)"):
        make_runner("tensorrt", new)
    with pytest.raises(UserError, match=r"argument --backend: invalid choice: 'tensorrt' \(choose from 'auto', "):
        infer.parse_args(["--backend", "tensorrt"])
    monkeypatch.setattr(runners, "openvino_module", lambda: None)
    err = one_line_error(capsys, infer.main, ["--model-dir", new, "--backend", "openvino"])
    assert err == "error: --backend openvino cannot run here: OpenVINO: not installed (pip install openvino)"
    err = one_line_error(capsys, infer.main, ["--model-dir", new, "--backend", "openvino", "--precision", "int8"])
    assert "the openvino backend runs fp32 or bf16 without TensorRT (asked: int8): use --backend paddle" in err


# ------------------------------------------------------------------------------ the real networks
@pytest.fixture(scope="module", params=[{"name": "MIRNet_v2", "n_feat": 16, "n_MRB": 1},
                                        {"name": "MIMOUNet", "num_res": 1}], ids=lambda c: c["name"])
def real_export(request, tmp_path_factory):
    from networks import build_network

    paddle.seed(5)
    net = build_network(dict(request.param))
    net.eval()
    folder = str(tmp_path_factory.mktemp("real") / request.param["name"])
    export_model(net, dict(request.param), folder, onnx=True)
    return net, folder


@pytest.mark.parametrize("backend", ["auto", "openvino", "paddle-openvino", "paddle", "onnx"])
def test_every_backend_matches_dygraph_on_an_odd_size(real_export, backend):
    net, folder = real_export
    runner = make_runner(backend, folder, threads=2)
    shape = (1, 3, 37, 45)
    x = _x(shape, seed=1)
    ref = DygraphRunner(net)(x)
    out = runner(x)
    assert out.shape == ref.shape == shape
    assert np.abs(out - ref).max() <= TOL, runner.description
    if backend == "auto":  # with OpenVINO installed, the default is OpenVINO on the legacy program
        what = runner.description
        assert what.startswith("OpenVINO ") and "inference.pdmodel (Paddle frontend)" in what
