"""Deployment: export (legacy + PIR formats, ONNX), the engines and Paddle Inference configurations, infer.py,
alignment tools.

Every registered network (tiny configs from test_networks.TINY) is exported once per module; dygraph, the
exported graph under every engine (infer.py's default, OpenVINO, Paddle Inference's OpenVINO engine and oneDNN,
ONNX Runtime), the safe PIR configuration must agree to 1e-4 on images of several sizes, some with sides that are
not multiples of 4.
"""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import yaml

import export_model
import infer
from networks import NETWORKS
from utils.deploy import alignment
from utils.deploy.export import export_model as export_network
from utils.deploy.restoration import default_image, restore, save_reprod_log
from utils.deploy.runners import BACKENDS, DygraphRunner, OnnxRunner, PaddleRunner, make_runner, openvino_module
from utils.deploy.tiling import TilePlan
from utils.image_io import ImageInfo, read_image, write_image

from conftest import one_line_error
from test_networks import TINY
from test_networks import save_tiny_network as make_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4
SIZES = ((48, 64), (37, 45), (29, 18))  # the last two are not multiples of 4
ANY_TASK = ["--any-task"]  # these tests compare backends on every network: the DAE priors run as plain filters


def images(folder, sizes=SIZES):
    """16-bit PNGs of the given sizes (noisy photo crops); returns their paths."""
    noisy, _ = default_image(128)
    paths = []
    for h, w in sizes:
        path = os.path.join(folder, f"img_{h}x{w}.png")
        write_image(path, noisy[:, :h, :w], ImageInfo(bit_depth=16))
        paths.append(path)
    return paths


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def exported(request, tmp_path_factory):
    """(name, dygraph net, weights, model dir): default export (legacy program) plus ONNX, done once."""
    folder = str(tmp_path_factory.mktemp(f"export_{request.param}"))
    weights, net = make_weights(folder, request.param)
    model_dir = os.path.join(folder, "inference")
    # pytest's Paddle runs the PIR API: the legacy program is written in-process under OldIrGuard
    export_model.main(["--weights", weights, "--save-inference-dir", model_dir, "--onnx"])
    return request.param, net, weights, model_dir


def test_export_writes_legacy_program_onnx_and_metadata(exported):
    name, net, _, model_dir = exported
    files = set(os.listdir(model_dir))
    assert {"inference.pdmodel", "inference.pdiparams", "inference.onnx", "inference.yml"} <= files
    assert not any(f.startswith(".export-") for f in files) and "inference.json" not in files
    meta = yaml.safe_load(open(os.path.join(model_dir, "inference.yml")))
    assert meta["model_name"] == name and meta["network"] == {"name": name, **TINY[name]}
    assert meta["format"] == "pdmodel" and meta["size_multiple"] == net.size_multiple
    assert meta["input"]["range"] == [0.0, 1.0] and meta["tile"] == {"size": 512, "overlap": 32,
                                                                     "auto_above_pixels": 1024 * 1024}
    if openvino_module() is not None:  # OpenVINO read the program and matched the network at export time
        assert meta["openvino"]["max_abs_diff"] <= TOL and "error" not in meta["openvino"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_matches_dygraph_on_odd_sizes(exported, backend):
    """Parity of each engine with dygraph, sizes changing between calls (dynamic shapes, no stale output)."""
    if backend in ("auto", "openvino") and openvino_module() is None:
        pytest.skip("openvino is not installed")
    _, net, _, model_dir = exported
    runner, dygraph = make_runner(backend, model_dir, "cpu", 2), DygraphRunner(net)
    assert runner.engine == ("openvino" if backend == "auto" else backend)
    for h, w in SIZES[1:] + SIZES[1:2]:
        x = np.random.RandomState(h * w).rand(1, 3, h, w).astype(np.float32)
        got = runner(x)
        assert got.shape == x.shape and np.abs(got - dygraph(x)).max() <= TOL, (backend, h, w)


def test_infer_default_config_matches_dygraph_with_benchmark_report(exported, tmp_path, capsys):
    name, net, _, model_dir = exported
    paths = images(str(tmp_path / "in"))
    out = tmp_path / "out"
    infer.main(["--model_dir", model_dir, "--image_dir", str(tmp_path / "in"), "--benchmark=True",
                "--cpu_threads", "2", "--save-dir", str(out), "--tile", "0"] + ANY_TASK)
    text = capsys.readouterr().out
    first = text.splitlines()[0]
    if openvino_module() is not None:  # the fastest engine installed
        assert first.startswith("OpenVINO ") and first.endswith("[--backend auto: the fastest engine]"), first
    else:
        assert "[--backend auto: skipped OpenVINO: not installed (pip install openvino)]" in first, first
    for block in ("Env info", "Paddle info", "Conf info", "Model info", "Data info", "Perf info"):
        assert block in text
    perf = re.search(r"^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] root INFO: +preprocess_time\(ms\): ([\d.]+), "
                     r"inference_time\(ms\): ([\d.]+), postprocess_time\(ms\): ([\d.]+)$", text, re.M)
    assert perf and float(perf.group(2)) > 0
    assert re.search(rf"root INFO: +model_name: {name}$", text, re.M)
    assert re.search(r"root INFO: +data_num: 3$", text, re.M)
    # the reprod_log file of infer.py against a dygraph record of the same inputs
    dygraph = DygraphRunner(net)
    ref = {os.path.basename(p): dygraph(read_image(p)[None])[0] for p in paths}
    save_reprod_log(str(tmp_path / "dygraph.npy"), ref)
    passed, diffs = alignment.compare_files(str(tmp_path / "dygraph.npy"), str(out / "inference_outputs.npy"),
                                            threshold=TOL)
    assert passed, diffs
    assert sorted(os.listdir(out)) == sorted([os.path.basename(p) for p in paths] + ["inference_outputs.npy"])


def test_onnx_matches_dygraph_with_alignment_tool(exported, tmp_path, capsys):
    from tools import alignment as tool

    _, net, weights, model_dir = exported
    dy, ox = str(tmp_path / "dygraph.npy"), str(tmp_path / "onnx.npy")
    tool.main(["record", "--backend", "dygraph", "--weights", weights, "--out", dy, "--sizes", "48x64,37x45,29x18"])
    tool.main(["record", "--backend", "onnx", "--model-dir", model_dir, "--out", ox, "--sizes", "48x64,37x45,29x18"])
    diffs = tool.main(["compare", dy, ox, "--threshold", str(TOL)])
    assert set(diffs) == {"out_48x64", "out_37x45", "out_29x18"} and max(diffs.values()) <= TOL
    rec = np.load(ox, allow_pickle=True).item()
    direct = DygraphRunner(net)(alignment.fixed_inputs(((37, 45),))["out_37x45"])
    assert np.abs(rec["out_37x45"] - direct).max() <= TOL  # the record holds real outputs
    assert "passed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:  # a threshold below the float error must fail
        tool.main(["compare", dy, ox, "--threshold", "1e-12"])
    assert err.value.code == 1 and "FAILED" in capsys.readouterr().out


def test_infer_onnx_backend_default_image_tiled(exported, tmp_path, capsys):
    _, net, _, model_dir = exported
    out = tmp_path / "out"
    infer.main(["--model-dir", model_dir, "--backend", "onnx", "--tile", "64", "--tile-overlap", "16",
                "--save-dir", str(out)] + ANY_TASK)
    text = capsys.readouterr().out
    assert text.startswith("ONNX Runtime") and re.search(r"astronaut_noisy\.png: PSNR [\d.]+ dB", text)
    got = np.load(out / "inference_outputs.npy", allow_pickle=True).item()["astronaut_noisy.png"]
    noisy, _ = default_image()
    want = restore(DygraphRunner(net), noisy, TilePlan(64, 16, net.size_multiple))
    assert np.abs(got - want).max() <= TOL
    assert cv2.imread(str(out / "astronaut_noisy.png")).shape == (256, 256, 3)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_pir_export_runs_with_safe_config(name, tmp_path):
    weights, net = make_weights(str(tmp_path), name)
    model_dir = str(tmp_path / "pir")
    export_model.main(["--weights", weights, "--save-inference-dir", model_dir, "--format", "json"])
    assert {"inference.json", "inference.pdiparams"} <= set(os.listdir(model_dir))
    runner = PaddleRunner(model_dir, "cpu", threads=2)
    assert "PIR program inference.json" in runner.description and "safe PIR configuration" in runner.description
    dygraph = DygraphRunner(net)
    for h, w in SIZES[1:]:
        x = np.random.RandomState(h).rand(2, 3, h, w).astype(np.float32)
        assert np.abs(runner(x) - dygraph(x)).max() <= TOL


class _OddSpaceNet(paddle.nn.Layer):
    """Stand-in for networks trained on BGR [0, 255] with coarse-to-fine outputs (DMSP's DAE, MIMO-UNet)."""

    size_multiple = 8
    input_range = (0.0, 255.0)
    channel_order = "BGR"

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 3, 3, padding=1)

    def forward(self, x):
        from networks.common import pad_to_multiple

        h, w = x.shape[2], x.shape[3]
        y = self.conv(pad_to_multiple(x, 8))[:, :, :h, :w] + x
        return [y[:, :, ::2, ::2], y]


def test_export_wrapper_handles_value_space_order_and_multiscale_outputs(tmp_path):
    paddle.seed(1)
    net = _OddSpaceNet()
    net.eval()
    x = np.random.RandomState(0).rand(1, 3, 13, 21).astype(np.float32)
    bgr255 = paddle.to_tensor(x[:, ::-1].copy() * 255.0)
    manual = (net(bgr255)[-1].numpy() / 255.0)[:, ::-1]
    np.testing.assert_allclose(DygraphRunner(net)(x), manual, atol=1e-5)
    export_network(net, {"name": "_OddSpaceNet"}, str(tmp_path), fmt="json")
    meta = yaml.safe_load(open(tmp_path / "inference.yml"))
    assert meta["network_space"] == {"channel_order": "BGR", "range": [0.0, 255.0]} and meta["size_multiple"] == 8
    np.testing.assert_allclose(PaddleRunner(str(tmp_path), "cpu", 2)(x), manual, atol=TOL)


# ------------------------------------------------------------------------------------------- bad input
def test_infer_bad_inputs(exported, tmp_path, capsys):
    _, _, _, model_dir = exported
    (tmp_path / "empty").mkdir()
    assert "no exported model" in one_line_error(capsys, infer.main, ["--model-dir", str(tmp_path / "empty")])
    bad = tmp_path / "corrupt_model"
    bad.mkdir()
    (bad / "inference.pdmodel").write_bytes(os.urandom(512))
    (bad / "inference.pdiparams").write_bytes(os.urandom(512))
    assert "not a valid exported program" in one_line_error(capsys, infer.main, ["--model-dir", str(bad)])
    assert "not supported on cpu" in one_line_error(capsys, infer.main,
                                                    ["--model-dir", model_dir, "--precision", "fp16"])
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    (imgs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    onnx = ["--model-dir", model_dir, "--backend", "onnx", "--save-dir", str(tmp_path / "o")] + ANY_TASK
    assert "cannot read image" in one_line_error(capsys, infer.main, onnx + ["--img-path", str(imgs)])
    cv2.imwrite(str(tmp_path / "float.tif"), np.zeros((8, 8, 3), np.float32))
    assert "unsupported pixel type" in one_line_error(capsys, infer.main,
                                                      onnx + ["--img-path", str(tmp_path / "float.tif")])
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((16, 16, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "gt.png"), np.zeros((16, 12, 3), np.uint8))
    assert "ground truth has size" in one_line_error(capsys, infer.main, onnx + ["--img-path", str(tmp_path / "a.png"),
                                                                          "--clean-dir", str(tmp_path / "gt.png")])
    with pytest.raises(Exception, match="expected RGB images"):
        restore(OnnxRunner(model_dir), np.zeros((4, 16, 16), np.float32))


def test_infer_missing_model_dir_subprocess(tmp_path):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "infer.py"), "--model-dir", str(tmp_path / "none")],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: model directory not found")
    assert "Traceback" not in res.stderr


def test_export_bad_weights(tmp_path, capsys):
    name = "MIRNet_v2"
    weights, _ = make_weights(str(tmp_path / "a"), name)
    argv = ["--save-inference-dir", str(tmp_path / "out"), "--format", "json"]
    assert "not found" in one_line_error(capsys, export_model.main,
                                         ["--weights", str(tmp_path / "none.pdparams")] + argv)
    # weights of another configuration (config.yml beside them says otherwise)
    other = tmp_path / "b"
    other.mkdir()
    os.replace(weights, other / "weights.pdparams")
    cfg = {"network": {"name": name, **TINY[name]}}
    cfg["network"]["n_feat"] = 32
    (other / "config.yml").write_text(yaml.safe_dump(cfg))
    assert "does not fit" in one_line_error(capsys, export_model.main,
                                            ["--weights", str(other / "weights.pdparams")] + argv)
    # weights of an unknown architecture and no config
    alien = tmp_path / "c"
    alien.mkdir()
    paddle.save({"encoder.conv.weight": paddle.zeros([4, 3, 3, 3])}, str(alien / "alien.pdparams"))
    assert "fits no registered network" in one_line_error(capsys, export_model.main,
                                                  ["--weights", str(alien / "alien.pdparams")] + argv)
    assert "--onnx needs" in one_line_error(capsys, export_model.main,
                                    ["--weights", str(other / "weights.pdparams"), "-c",
                                     str(tmp_path / "a" / "config.yml"), "--onnx"] + argv)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
