"""restore_dmsp.py: a tiny end-to-end run, the Ascend port's flag names, kernels from files, bad input."""
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import scipy.io

from networks import DAE
from utils.checkpoint import save_weights
from utils.cli import UserError, run_main
from utils.dmsp.restore import load_kernel

from conftest import ROOT

sys.path.insert(0, ROOT)
import restore_dmsp

SCRIPT = [sys.executable, os.path.join(ROOT, "restore_dmsp.py")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("dmsp")
    paddle.seed(0)
    save_weights(DAE(features=8, depth=3), str(root / "dae.pdparams"))
    (root / "config.yml").write_text("network:\n  name: DAE\n  features: 8\n  depth: 3\n")  # as training writes
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"{name}.png"), blocks.repeat(5, 0).repeat(5, 1))
    kernel = np.ones((5, 3)) / 15
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0], cells[0, 1] = kernel, np.ones((3, 3))
    scipy.io.savemat(str(root / "kernels.mat"), {"kernels": cells})
    np.save(str(root / "kernel.npy"), kernel)
    return root


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        run_main(restore_dmsp.main, argv)
    err = capsys.readouterr().err.strip()
    return exc.value.code, err


def test_end_to_end_cli_with_ascend_flag_names(files, tmp_path):
    """Synthesized deblurring of a folder in one batch with the TF port's flag spellings."""
    out = tmp_path / "out"
    res = subprocess.run(SCRIPT + ["--data_url", str(files), "--synthesize", "--kernel", str(files / "kernels.mat"),
                                   "--denoiser", str(files / "dae.pdparams"), "--num_iter", "3", "--sigma_dae", "11",
                                   "--mu", "0.9", "--alpha", "0.1", "--batch_size", "2", "--output", str(out),
                                   "--device", "cpu"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "a: PSNR" in res.stdout and "b: PSNR" in res.stdout and "mean over 2 image(s)" in res.stdout
    assert f"results written to {out}: the restored images (NAME.png), the degraded inputs" in res.stdout
    restored = cv2.imread(str(out / "a.png"))
    assert restored.shape == (30, 40, 3)
    assert cv2.imread(str(out / "a_degraded.png")).shape == (26, 38, 3)  # valid blur: 5 x 3 kernel
    assert "mean over" in (out / "restore_dmsp.log").read_text()


@pytest.mark.parametrize("task, shape", [("sr", (60, 80, 3)), ("demosaic", (30, 40, 3))])
def test_real_inputs_for_masked_tasks(files, tmp_path, capsys, task, shape):
    code = restore_dmsp.main(["--input", str(files / "a.png"), "--task", task, "--weights",
                              str(files / "dae.pdparams"), "--num-iter", "2", "--output", str(tmp_path),
                              "--backend", "dygraph", "--device", "cpu"])
    assert code is None
    assert cv2.imread(str(tmp_path / "a.png")).shape == shape
    assert "a: restored" in capsys.readouterr().out


def test_kernel_files(files, tmp_path):
    k0 = load_kernel(str(files / "kernels.mat"), 0)
    assert k0.shape == (5, 3) and k0.sum() == pytest.approx(1.0)
    assert load_kernel(str(files / "kernels.mat"), 1).shape == (3, 3)
    np.testing.assert_allclose(load_kernel(str(files / "kernel.npy")), k0, rtol=1e-6)
    cv2.imwrite(str(tmp_path / "k.png"), np.array([[0, 255, 0], [0, 255, 0]], np.uint8))
    np.testing.assert_allclose(load_kernel(str(tmp_path / "k.png")), [[0, 0.5, 0], [0, 0.5, 0]])
    assert load_kernel(None).shape == (1, 1)
    with pytest.raises(UserError, match="out of range"):
        load_kernel(str(files / "kernels.mat"), 5)
    np.save(str(tmp_path / "zero.npy"), np.zeros((3, 3)))
    with pytest.raises(UserError, match="positive sum"):
        load_kernel(str(tmp_path / "zero.npy"))
    (tmp_path / "broken.mat").write_text("garbage")
    with pytest.raises(UserError, match="cannot read kernel file"):
        load_kernel(str(tmp_path / "broken.mat"))
    with pytest.raises(UserError, match="unsupported kernel file"):
        load_kernel(str(files / "dae.pdparams"))


def test_bad_inputs_give_one_error_line(files, tmp_path, capsys):
    base = ["--weights", str(files / "dae.pdparams"), "--kernel", str(files / "kernel.npy"), "--output",
            str(tmp_path / "o"), "--num-iter", "1", "--device", "cpu"]
    cases = [
        (["--input", str(tmp_path / "missing.png")], "no images found"),
        (["--input", str(files / "a.png"), "--kernel", str(tmp_path / "none.mat")], "kernel file not found"),
        (["--input", str(files / "a.png"), "--kernel", str(tmp_path / "kernels.mat")], "data/lite/BSDS300/kernels.npy"),
        (["--input", str(files / "a.png"), "--weights", str(tmp_path / "missing.pdparams")],
         "denoiser weights not found"),
        (["--input", str(files / "a.png"), "--weights", str(files / "kernels.mat")], "no 'net' variable"),
        (["--input", str(files / "a.png"), "--crop", "500"], "larger than the image"),
        (["--input", str(files / "a.png"), "--device", "gpu:3"], "not available"),
    ]
    for extra, message in cases:
        code, err = _run(base + extra, capsys)
        assert code == 2, (extra, err)
        assert err.startswith("error:") and len(err.splitlines()) == 1 and message in err, err
    code, err = _run(["--input", str(files / "a.png"), "--weights", str(files / "dae.pdparams"), "--output",
                      str(tmp_path / "o")], capsys)
    assert code == 2 and "needs a blur kernel" in err
    mirnet = tmp_path / "mirnet.pdparams"
    from networks import build_network

    save_weights(build_network({"name": "MIRNet_v2", "n_feat": 16, "n_MRB": 1}), str(mirnet))
    (tmp_path / "config.yml").write_text("network:\n  name: MIRNet_v2\n  n_feat: 16\n  n_MRB: 1\n")
    code, err = _run(base + ["--input", str(files / "a.png"), "--weights", str(mirnet)], capsys)
    assert code == 2 and "not a DMSP denoiser" in err
    assert not os.path.exists(tmp_path / "o" / "a.png")
