"""Fast CPU paths: INT8 (post-training quantisation + oneDNN INT8), the bf16 refusal, the CPU configuration's
choices, and the model card's parameter / MAC counts."""
import os

import numpy as np
import paddle
import pytest
import yaml

import export_model
import infer
from networks import build_network
from tools import model_card as card_tool
from tools import quantize as quantize_tool
from utils.deploy import runners as inf
from utils.deploy.model_card import count_macs, count_parameters, macs_at
from utils.deploy.restoration import default_image
from utils.deploy.runners import DygraphRunner, PaddleRunner, predictor_config
from utils.image_io import ImageInfo, write_image
from utils.metrics import psnr

from conftest import one_line_error
from test_networks import save_tiny_network

INT8_MIN_PSNR = 30.0  # dB, INT8 output against the fp32 network on a photo crop (random weights; measured ~40)
ODD = (37, 45)


def _weights(folder, name="MIMOUNet"):
    return save_tiny_network(folder, name)


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    """(dygraph net, fp32 export, INT8 model) of a tiny MIMO-UNet (its transposed convs stay fp32)."""
    folder = str(tmp_path_factory.mktemp("int8"))
    weights, net = _weights(folder)
    fp32, int8, calib = (os.path.join(folder, d) for d in ("fp32", "int8", "calib"))
    export_model.main(["--weights", weights, "--save-inference-dir", fp32])
    os.makedirs(calib)
    for k in range(2):
        write_image(os.path.join(calib, f"{k}.png"), default_image(64, seed=k)[0], ImageInfo())
    quantize_tool.main(["--model-dir", fp32, "--calib-dir", calib, "--save-dir", int8, "--crop", "48"])
    return net, fp32, int8


def test_int8_model_close_to_dygraph_on_odd_size(int8_model, tmp_path, capsys):
    net, fp32, int8 = int8_model
    meta = yaml.safe_load(open(os.path.join(int8, "inference.yml")))
    assert meta["precision"] == "int8" and meta["quantization"]["calibration_images"] == 2
    x = default_image(128, seed=5)[0][None, :, :ODD[0], :ODD[1]].copy()
    runner = PaddleRunner(int8, "cpu", 2, True, "int8")
    assert "INT8 kernels" in runner.description
    got, want = runner(x), DygraphRunner(net)(x)
    assert got.shape == want.shape
    assert psnr(got[0], want[0]) >= INT8_MIN_PSNR
    assert np.abs(got - want).max() > 1e-5  # really quantised, not the fp32 graph
    infer.main(["--model-dir", int8, "--precision", "int8", "--save-dir", str(tmp_path / "o"), "--cpu-threads", "2"])
    assert "INT8 kernels" in capsys.readouterr().out.splitlines()[0]


def test_int8_and_precision_mismatches_are_refused(int8_model, tmp_path, capsys):
    _, fp32, int8 = int8_model
    assert "holds an INT8 model" in one_line_error(capsys, infer.main, ["--model-dir", int8])
    assert "needs a quantised model" in one_line_error(capsys, infer.main, ["--model-dir", fp32, "--precision", "int8"])
    assert "already quantised" in one_line_error(capsys, quantize_tool.main, ["--model-dir", int8, "--calib-dir", fp32,
                                                                      "--save-dir", str(tmp_path / "q")])
    assert "no images found" in one_line_error(capsys, quantize_tool.main, ["--model-dir", fp32, "--calib-dir",
                                                                    str(tmp_path / "none"), "--save-dir",
                                                                    str(tmp_path / "q")])
    assert "no exported model" in one_line_error(capsys, quantize_tool.main,
                                                 ["--model-dir", str(tmp_path), "--calib-dir", fp32, "--save-dir",
                                                  str(tmp_path / "q")])


def test_int8_warns_on_cpus_without_int8_dot_products(int8_model, monkeypatch):
    _, _, int8 = int8_model
    monkeypatch.setattr(inf, "cpu_instructions", lambda: (False, False))
    _, what = predictor_config(int8, "cpu", 2, True, "int8")
    assert "INT8 kernels" in what and "no AVX512-VNNI / AMX-INT8" in what and "\n" not in what
    monkeypatch.setattr(inf, "cpu_instructions", lambda: (False, True))
    _, what = predictor_config(int8, "cpu", 2, True, "int8")
    assert "INT8 kernels" in what and "warning" not in what


def test_int8_through_the_default_engine_says_so_in_one_line(int8_model, monkeypatch):
    _, _, int8 = int8_model
    monkeypatch.setattr(inf, "cpu_instructions", lambda: (False, False))
    with pytest.raises(inf.UserError, match="holds an INT8 model: run it with --precision int8"):
        inf.make_runner("auto", int8, threads=1)  # fp32 asked of an INT8 model
    what = inf.make_runner("auto", int8, threads=1, precision="int8").description
    assert what.startswith("Paddle Inference: ") and "INT8 kernels" in what and "\n" not in what
    assert "warning: this CPU" in what and "no AVX512-VNNI / AMX-INT8" in what
    assert "[--backend auto: INT8 models of tools/quantize.py run under Paddle Inference]" in what


def test_quantize_refuses_pir_program(tmp_path, capsys):
    weights, _ = _weights(str(tmp_path))
    pir = str(tmp_path / "pir")
    export_model.main(["--weights", weights, "--save-inference-dir", pir, "--format", "json"])
    write_image(str(tmp_path / "c.png"), default_image(32)[0], ImageInfo())
    assert "needs the legacy program" in one_line_error(capsys, quantize_tool.main, [
        "--model-dir", pir, "--calib-dir", str(tmp_path / "c.png"), "--save-dir", str(tmp_path / "q")])


def test_bf16_refused_without_instructions_and_configured_with_them(int8_model, monkeypatch, capsys):
    _, fp32, _ = int8_model
    monkeypatch.setattr(inf, "cpu_instructions", lambda: (False, False))
    msg = one_line_error(capsys, infer.main, ["--model-dir", fp32, "--precision", "bf16", "--backend", "paddle"])
    assert "needs a CPU with AVX512-BF16 or AMX" in msg
    assert msg.count("\n") == 0 and "use fp32 or int8" in msg

    class Spy(paddle.inference.Config):  # the Config cannot be asked whether bf16 is on: record the call
        bf16 = False

        def enable_mkldnn_bfloat16(self):
            Spy.bf16 = True
            super().enable_mkldnn_bfloat16()

    monkeypatch.setattr(paddle.inference, "Config", Spy)
    monkeypatch.setattr(inf, "cpu_instructions", lambda: (True, True))
    config, what = predictor_config(fp32, "cpu", 2)
    assert "fast CPU configuration" in what and not Spy.bf16 and config.mkldnn_enabled()
    config, what = predictor_config(fp32, "cpu", 2, True, "bf16")
    assert "bfloat16 kernels" in what and Spy.bf16 and config.mkldnn_enabled()


@pytest.mark.skipif(not inf.cpu_instructions()[0], reason="this CPU has no AVX512-BF16 / AMX")
def test_bf16_close_to_dygraph(int8_model):
    net, fp32, _ = int8_model
    x = default_image(128, seed=5)[0][None, :, :ODD[0], :ODD[1]].copy()
    got = PaddleRunner(fp32, "cpu", 2, True, "bf16")(x)
    assert psnr(got[0], DygraphRunner(net)(x)[0]) >= INT8_MIN_PSNR


# ------------------------------------------------------------------------------------------ model card
class _Tiny(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.a = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.b = paddle.nn.Conv2D(8, 8, 3, padding=1, groups=4, bias_attr=False)
        self.c = paddle.nn.Conv2DTranspose(8, 4, 4, stride=2, padding=1)

    def forward(self, x):
        y = self.b(self.a(x))
        return self.c(self.b(y))  # b runs twice: counted twice


def test_mac_count_by_hand():
    h, w = 6, 10
    want = h * w * 8 * 3 * 9 + 2 * (h * w * 8 * 2 * 9) + h * w * 8 * 4 * 16
    assert count_macs(_Tiny(), h, w) == want
    assert count_parameters(_Tiny()) == (8 * 3 * 9 + 8) + 8 * 2 * 9 + (8 * 4 * 16 + 4)


@pytest.mark.parametrize("name, official", [("MIRNet_v2", 139.6), ("MIMOUNet", 63.7), ("MIMOUNetPlus", 150.7)])
def test_official_gmacs(name, official):
    # fully convolutional with sides divisible by 4: the count scales exactly with the pixels
    macs = count_macs(build_network({"name": name}), 32, 32) * (256 * 256) / (32 * 32)
    assert abs(macs / 1e9 - official) / official < 0.002


def test_macs_at_any_size_without_running_it():
    net = build_network({"name": "MIRNet_v2", "n_feat": 16, "n_MRB": 1})
    for h, w in ((61, 97), (20, 36)):
        assert macs_at(net, h, w) == count_macs(net, h, w)


def test_model_card_tool(tmp_path, capsys):
    path = tmp_path / "card.json"
    cards = card_tool.main(["--models", "MIMOUNet", "-o", "MIMOUNet.num_res=1", "--sizes", "16x16", "8x12",
                            "--json", str(path)])
    assert cards == yaml.safe_load(path.read_text())
    net = build_network({"name": "MIMOUNet", "num_res": 1})
    assert cards[0]["params"] == count_parameters(net)
    assert cards[0]["gmacs"]["16x16"] == round(count_macs(net, 16, 16) / 1e9, 3) > cards[0]["gmacs"]["8x12"]
    assert "| MIMOUNet |" in capsys.readouterr().out
    assert "unknown model" in one_line_error(capsys, card_tool.main, ["--models", "Nope"])
    assert "must look like MODEL.key=value" in one_line_error(capsys, card_tool.main,
                                                              ["--models", "MIMOUNet", "-o", "x=1"])
