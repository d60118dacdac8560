"""Training the DMSP prior through the engine: reproducible noisy patches, the DAE configs, and a trained
DAE_BN checkpoint folded into the deployable DAE, driving the solver, restore_dmsp.py, export and infer.py."""
import os
import re
import shutil

import numpy as np
import paddle
import pytest
import yaml

import export_model
import infer
import restore_dmsp
import train
from dataloaders import build_dataset
from dataloaders.prepare.lite_data import make_bsds
from networks import DAE, DAE_BN, build_network
from tools import fold_dae
from utils.checkpoint import WeightsError, load_weights, network_config_for, save_weights
from utils.cli import run_main
from utils.config import get_by_path, load_config
from utils.deploy.restoration import default_image
from utils.dmsp.restore import DEFAULT_IMAGE_SIZE, load_dae, motion_kernel
from utils.dmsp.solver import dmsp_restore, layer_denoiser, synthesize
from utils.engine import DEFAULTS, MERGED, SeededDataset, Trainer, resolve_config

from conftest import ROOT

LITE = os.path.join(ROOT, "configs", "dmsp_dae_lite.yml")
FULL = os.path.join(ROOT, "configs", "dmsp_dae_bsds300.yml")


@pytest.fixture(scope="module")
def bsds(tmp_path_factory):
    root = tmp_path_factory.mktemp("lite")
    make_bsds(str(root), seed=0)
    return os.path.join(str(root), "BSDS300")


def overrides(bsds, out, iters=4):
    """The lite config on a tiny network and a few small batches (as the TIPC chain overrides it)."""
    return ["network.features=8", "network.depth=4", f"data.train.root={bsds}", f"data.val.root={bsds}",
            f"train.stages.0.iters={iters}", "train.stages.0.batch_size=2", "train.stages.0.patch_size=24",
            "train.max_minutes=null", "val.freq=2", "output.checkpoint_freq=2", f"output.model_dir={out}/model",
            f"output.log_dir={out}/logs", "log.print_freq=1", "log.progress_bar=false", "log.visualdl=false"]


@pytest.fixture(scope="module")
def trained(bsds, tmp_path_factory):
    """model_best.pdparams + config.yml of a short DAE_BN run of ``train.py -c configs/dmsp_dae_lite.yml``."""
    out = tmp_path_factory.mktemp("dae_run")
    metrics = train.main(["-c", LITE, "--device", "cpu", "-o", *overrides(bsds, out, iters=6)])
    assert set(metrics) == {"psnr", "ssim"}
    return out / "model"


def test_training_noise_follows_the_engine_seeding(bsds):
    """Unseeded (training) samples are functions of the engine's per-sample seed; seeded ones of the index."""
    ds = build_dataset({"name": "GaussianNoiseFolder", "root": bsds, "patch_size": 24})
    seeded = SeededDataset(ds)
    a, b, c = seeded[(3, 7)], seeded[(3, 7)], seeded[(3, 8)]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0] - a[1], c[0] - c[1])
    val = build_dataset({"name": "GaussianNoiseFolder", "root": bsds, "split": "test", "patch_size": None,
                         "augment": False, "seed": 0, "cache": True})
    np.random.seed(1)
    first = val[2][0]
    np.random.seed(2)
    np.testing.assert_array_equal(val[2][0], first)  # whatever the global state


def test_identical_runs_and_a_resumed_run_give_identical_losses(bsds, tmp_path):
    full = Trainer(load_config(LITE, overrides(bsds, tmp_path / "a")), device="cpu", record_history=True)
    full.fit()
    first = Trainer(load_config(LITE, overrides(bsds, tmp_path / "b") + ["train.max_iters=2"]), device="cpu",
                    record_history=True)
    first.fit()
    second = Trainer(load_config(LITE, overrides(bsds, tmp_path / "b")), device="cpu", resume="auto",
                     record_history=True)
    second.fit()
    losses = [h["loss"] for h in full.history]
    assert len(losses) == 4 and max(losses) - min(losses) > 1e-3
    np.testing.assert_allclose([h["loss"] for h in first.history + second.history], losses, rtol=1e-6, atol=0)


def _flat_keys(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and path in MERGED:
            yield from _flat_keys(value, path + ".")


def test_dae_configs():
    """Both configs resolve; the recipe is the DMSP prior's; the lite one spells out every key (TIPC's -o)."""
    for path in (FULL, LITE):
        cfg = resolve_config(load_config(path))
        assert cfg["network"]["name"] == "DAE_BN"
        train_set, val_set = cfg["data"]["train"], cfg["data"]["val"]
        assert train_set["name"] == val_set["name"] == "GaussianNoiseFolder"
        assert train_set["sigma"] == val_set["sigma"] == 11.0
        assert train_set["seed"] is None and isinstance(val_set["seed"], int) and val_set["patch_size"] is None
        assert (train_set["split"], val_set["split"]) == ("train", "test")
        opt = cfg["train"]["optimizer"]
        assert (opt["name"], opt["lr"], opt["momentum"]) == ("SGD", 0.01, 0.9)
        assert cfg["train"]["loss"]["name"] == "MSELoss"
        build_network(cfg["network"])
    full = load_config(FULL)["network"]
    assert (full.get("features", 64), full.get("depth", 20)) == (64, 20)  # the official DAE's size
    with open(LITE, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    missing = [k for k in _flat_keys(DEFAULTS) if get_by_path(raw, k, "<missing>") == "<missing>"]
    assert not missing, f"{LITE} lacks {missing}"


@pytest.fixture(scope="module")
def folded(trained, tmp_path_factory):
    """The trained checkpoint folded by tools/fold_dae.py into a deployable DAE file (no config.yml beside it)."""
    dst = tmp_path_factory.mktemp("dae_folded") / "dae.pdparams"
    fold_dae.main(["--src", str(trained / "model_best.pdparams"), "--dst", str(dst)])
    return dst


def test_trained_checkpoint_folds_and_drives_the_solver_like_the_folded_dae(trained, folded):
    weights = trained / "model_best.pdparams"
    assert (trained / "config.yml").is_file()
    cfg = load_config(str(trained / "config.yml"))["network"]
    bn = load_weights(build_network(cfg), str(weights))
    assert isinstance(bn, DAE_BN)
    assert network_config_for(str(folded)) == {"name": "DAE", "in_channels": 3, "features": 8, "depth": 4}
    folded = load_weights(DAE(features=8, depth=4), str(folded))
    bn.eval()
    folded.eval()
    x = paddle.to_tensor(default_image(24)[0][None] * 255.0)  # the DAE's own range
    with paddle.no_grad():
        ref, got = bn(x).numpy(), folded(x).numpy()
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()  # trained running statistics fold exactly
    gt = default_image(40)[1][None] * 255.0
    y, _ = synthesize(gt, "deblur", motion_kernel(), 2.55, seed=0)
    a = dmsp_restore(y, layer_denoiser(bn), motion_kernel(), sigma_d=-1, num_iter=6, seed=1, progress=False)
    b = dmsp_restore(y, layer_denoiser(folded), motion_kernel(), sigma_d=-1, num_iter=6, seed=1, progress=False)
    assert np.abs(a.numpy() - b.numpy()).max() / 255.0 < 1e-4
    assert np.abs(a.numpy() - gt).max() > 1.0  # the solver did something


def _cli(main, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        run_main(main, argv)
    return exc.value.code, capsys.readouterr()


def test_folded_files_of_other_shapes_are_refused(tmp_path):
    """Only a complete DAE layout is read off a file; anything else still asks for the training config."""
    net = DAE(features=8, depth=3)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    for name, broken in (("missing", {k: v for k, v in state.items() if k != "conv2.bias"}),
                         ("shape", {**state, "conv2.weight": state["conv2.weight"][:, :4]})):
        path = tmp_path / f"{name}.pdparams"
        paddle.save({k: paddle.to_tensor(v) for k, v in broken.items()}, str(path))
        with pytest.raises(WeightsError, match="fits no registered network"):
            network_config_for(str(path))
    save_weights(net, str(tmp_path / "ok.pdparams"))
    assert network_config_for(str(tmp_path / "ok.pdparams"))["depth"] == 3


def test_restore_dmsp_accepts_the_engine_checkpoint(trained, folded, tmp_path, capsys):
    """restore_dmsp.py --weights model_best.pdparams (config.yml beside it) folds it; same as the folded file."""
    from utils.image_io import ImageInfo, write_image

    write_image(str(tmp_path / "sharp.png"), default_image(40)[1], ImageInfo())
    np.save(str(tmp_path / "k.npy"), motion_kernel())
    lines = []
    for weights, out in ((trained / "model_best.pdparams", "a"), (folded, "b")):
        restore_dmsp.main(["--input", str(tmp_path / "sharp.png"), "--synthesize", "--kernel", str(tmp_path / "k.npy"),
                           "--weights", str(weights), "--num-iter", "3", "--output", str(tmp_path / out),
                           "--backend", "dygraph", "--device", "cpu"])
        lines.append(psnr_lines(capsys.readouterr().out))
    assert len(lines[0]) == 2 and lines[0] == lines[1]  # the image and the mean
    assert (tmp_path / "a" / "sharp.png").is_file()


def psnr_lines(text):
    """The PSNR report lines of restore_dmsp.py / infer.py, without the timing."""
    return [re.sub(r" \([0-9.]+ s/iter\)", "", ln) for ln in text.splitlines() if "PSNR" in ln]


# ---- the trained prior exported (export_model.py) and run by infer.py's DMSP mode

@pytest.fixture(scope="module")
def exported(folded, tmp_path_factory):
    """The folded DAE exported with no config (its size read off the weights), as a user deploys a prior."""
    out = tmp_path_factory.mktemp("dae_export") / "inference"
    export_model.main(["--weights", str(folded), "--save-inference-dir", str(out)])
    meta = yaml.safe_load((out / "inference.yml").read_text())
    assert meta["network"] == {"name": "DAE", "in_channels": 3, "features": 8, "depth": 4}
    return out


def test_the_batchnorm_checkpoint_exports_too(trained, exported, tmp_path):
    """Exporting model_best.pdparams directly (config.yml beside it): DAE_BN in eval mode, the folded DAE's
    outputs under Paddle Inference."""
    from utils.deploy.runners import make_runner

    export_model.main(["--weights", str(trained / "model_best.pdparams"), "--save-inference-dir", str(tmp_path)])
    assert yaml.safe_load((tmp_path / "inference.yml").read_text())["model_name"] == "DAE_BN"
    x = default_image(24)[0][None]
    a, b = (make_runner("paddle", str(d), "cpu", threads=1)(x) for d in (tmp_path, exported))
    assert a.shape == x.shape and np.abs(a - b).max() < 1e-4 and np.abs(a - x).max() > 1e-3


def test_infer_dmsp_equals_the_solver_with_the_dygraph_dae(trained, exported, tmp_path, capsys):
    """No --img-path: the built-in sharp crop, blurred with the built-in kernel; the solver around the Paddle
    Inference predictor (oneDNN) gives the dygraph result for the same seeds."""
    records = infer.main(["--model-dir", str(exported), "--dmsp-task", "deblur", "--num-iter", "5", "--save-dir",
                          str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "DMSP deblur: 5 iterations" in out and "built-in motion blur" in out
    assert [r["name"] for r in records] == ["astronaut"] and records[0]["psnr"] > 0
    logged = np.load(str(tmp_path / "inference_outputs.npy"), allow_pickle=True).item()
    got = np.asarray(logged["astronaut"]) * 255.0
    gt = default_image(DEFAULT_IMAGE_SIZE)[1][None] * 255.0
    kernel = motion_kernel()
    y, _ = synthesize(gt, "deblur", kernel, 2.55, seed=0)
    want = dmsp_restore(y, layer_denoiser(load_dae(str(trained / "model_best.pdparams"))), kernel, sigma_d=-1,
                        num_iter=5, seed=1, progress=False).numpy()[0]
    assert got.shape == want.shape == (3, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    assert np.abs(got - want).max() < 1e-2  # 0-255 scale: oneDNN's float32 rounding only
    assert np.abs(want - gt[0]).max() > 1.0
    assert (tmp_path / "astronaut.png").is_file() and (tmp_path / "astronaut_degraded.png").is_file()


def test_infer_dmsp_on_files_matches_restore_dmsp(trained, exported, tmp_path, capsys):
    """Super-resolution of a file (synthesised), with the benchmark report: the same PSNRs as restore_dmsp.py."""
    from utils.image_io import ImageInfo, write_image

    write_image(str(tmp_path / "sharp.png"), default_image(48)[1], ImageInfo())
    common = ["--synthesize", "--num-iter", "3", "--device", "cpu", "--seed", "5"]
    infer.main(["--model-dir", str(exported), "--dmsp-task", "sr", "--img-path", str(tmp_path / "sharp.png"),
                "--save-dir", str(tmp_path / "infer"), "--benchmark", "True"] + common)
    out = capsys.readouterr().out
    assert "inference_time(ms)" in out and "model_name: DMSP_sr_DAE" in out
    restore_dmsp.main(["--task", "sr", "--input", str(tmp_path / "sharp.png"), "--weights",
                       str(trained / "model_best.pdparams"), "--output", str(tmp_path / "dygraph"),
                       "--backend", "dygraph"] + common)
    assert psnr_lines(out) == psnr_lines(capsys.readouterr().out) != []


def test_infer_dmsp_bad_inputs(exported, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(str(exported), str(other))
    meta = yaml.safe_load((other / "inference.yml").read_text())
    (other / "inference.yml").write_text(yaml.safe_dump({**meta, "model_name": "MIRNet_v2"}))
    from utils.image_io import ImageInfo, write_image

    write_image(str(tmp_path / "blurry.png"), default_image(32)[0], ImageInfo())
    base = ["--dmsp-task", "deblur", "--num-iter", "2", "--device", "cpu", "--save-dir", str(tmp_path / "o")]
    cases = [
        (["--model-dir", str(other)], "needs a DMSP denoiser"),
        (["--model-dir", str(exported), "--img-path", str(tmp_path / "blurry.png")], "--kernel FILE"),
        (["--model-dir", str(exported), "--clean-dir", str(tmp_path)], "--clean-dir is not used"),
        (["--model-dir", str(exported), "--num-iter", "-1"], "--num-iter must be >= 0"),
        (["--model-dir", str(exported), "--kernel", str(tmp_path / "none.npy")], "kernel file not found"),
    ]
    for extra, message in cases:
        code, res = _cli(infer.main, base + extra, capsys)
        err = res.err.strip()
        assert code == 2 and err.startswith("error:") and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()
