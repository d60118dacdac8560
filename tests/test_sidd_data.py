"""Lite SIDD data, SIDD patch generation, SIDD validation blocks, paired datasets and augmentations."""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scipy.io import loadmat, savemat

from dataloaders import DatasetError, build_dataset
from dataloaders.paired import PairedImageDataset
from dataloaders.prepare.lite_data import LITE_TASKS, make_sidd
from dataloaders.prepare.sidd_patches import find_pairs, generate_patches, grid_positions
from dataloaders.sidd import SIDDValidationBlocks
from dataloaders.transforms import geometric
from utils.config import ConfigError
from utils.metrics import psnr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), root)] = fh.read()
    return out


# -- lite data ------------------------------------------------------------------------------------------------------

def test_lite_sidd_layout_size_and_realism(sidd_lite):
    assert LITE_TASKS["sidd"] is make_sidd
    for split, lo, hi in (("train_mini", 8, 16), ("val_mini", 8, 16)):
        base = sidd_lite / "SIDD_patches" / split
        names = sorted(os.listdir(base / "input"))
        assert lo <= len(names) <= hi and names == sorted(os.listdir(base / "groundtruth"))
        for name in names[:3]:
            noisy, clean = cv2.imread(str(base / "input" / name)), cv2.imread(str(base / "groundtruth" / name))
            assert noisy.shape == clean.shape and min(noisy.shape[:2]) >= 128
            # camera-like noise: clearly visible but not overwhelming
            assert 20 < psnr(noisy.astype(float) / 255, clean.astype(float) / 255) < 36
    scenes = os.listdir(sidd_lite / "SIDD_Medium_Srgb" / "Data")
    assert scenes and all(sorted(os.listdir(sidd_lite / "SIDD_Medium_Srgb" / "Data" / s)) ==
                          ["GT_SRGB_010.PNG", "GT_SRGB_011.PNG", "NOISY_SRGB_010.PNG", "NOISY_SRGB_011.PNG"]
                          for s in scenes)
    for key in ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"):
        blocks = loadmat(str(sidd_lite / "SIDD_val" / f"{key}.mat"))[key]
        assert blocks.dtype == np.uint8 and blocks.ndim == 5 and blocks.shape[-1] == 3
    total = sum(len(b) for b in _files(sidd_lite).values())
    assert total < 20e6
    assert not [f for f in os.listdir(sidd_lite) if f.startswith(".")]  # no staging leftovers


def test_lite_sidd_noise_grows_with_signal(sidd_lite):
    """Shot noise: in linear light the noise variance rises with brightness."""
    from dataloaders.prepare.lite_data import srgb_to_linear

    base = sidd_lite / "SIDD_patches" / "train_mini"
    dark, bright = [], []
    for name in sorted(os.listdir(base / "input")):
        noisy = srgb_to_linear(cv2.imread(str(base / "input" / name)).astype(float) / 255)
        clean = srgb_to_linear(cv2.imread(str(base / "groundtruth" / name)).astype(float) / 255)
        err = (noisy - clean)[..., 1]
        dark.append(err[(clean[..., 1] > 0.02) & (clean[..., 1] < 0.1)])
        bright.append(err[clean[..., 1] > 0.4])
    assert np.var(np.concatenate(bright)) > 2 * np.var(np.concatenate(dark))


def test_lite_sidd_is_deterministic_and_replaces_atomically(sidd_lite, tmp_path):
    make_sidd(str(tmp_path), seed=0)
    first = _files(tmp_path)
    (tmp_path / "SIDD_patches" / "stale.txt").write_text("old")
    make_sidd(str(tmp_path), seed=0)
    assert _files(tmp_path) == first == _files(sidd_lite)
    make_sidd(str(tmp_path), seed=1)
    assert _files(tmp_path) != first


# -- patch generation -----------------------------------------------------------------------------------------------

@pytest.fixture
def sidd_tree(sidd_lite, tmp_path):
    """The fake SIDD-Medium tree plus a corrupt pair, a size-mismatched pair and a NOISY image without GT."""
    src = tmp_path / "SIDD_Medium_Srgb"
    shutil.copytree(sidd_lite / "SIDD_Medium_Srgb", src)
    data = src / "Data"
    good = sorted(os.listdir(data))[0]
    bad = data / "0099_001_S6_corrupt"
    bad.mkdir()
    shutil.copy(data / good / "GT_SRGB_010.PNG", bad / "GT_SRGB_010.PNG")
    (bad / "NOISY_SRGB_010.PNG").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    shutil.copy(data / good / "GT_SRGB_011.PNG", bad / "GT_SRGB_011.PNG")
    cv2.imwrite(str(bad / "NOISY_SRGB_011.PNG"), np.zeros((150, 150, 3), np.uint8))
    shutil.copy(data / good / "NOISY_SRGB_010.PNG", bad / "NOISY_SRGB_012.PNG")
    return src


def test_find_pairs_reports_lonely_images(sidd_tree):
    pairs, problems = find_pairs(str(sidd_tree))
    assert len(pairs) == 3 * 2 + 2
    assert [os.path.basename(p) for p, _ in problems] == ["NOISY_SRGB_012.PNG"]
    with pytest.raises(DatasetError, match="not found"):
        find_pairs(str(sidd_tree / "missing"))


def test_random_patches_skip_bad_pairs_deterministic_and_idempotent(sidd_tree, tmp_path):
    dst = tmp_path / "patches"
    written, used, problems = generate_patches(str(sidd_tree), str(dst), ps=64, num_patches=3, seed=5,
                                               num_workers=1, progress=False)
    assert (written, used) == (18, 6)
    reasons = {os.path.basename(p): r for p, r in problems}
    assert set(reasons) == {"NOISY_SRGB_010.PNG", "NOISY_SRGB_011.PNG", "NOISY_SRGB_012.PNG"}
    assert "unreadable" in reasons["NOISY_SRGB_010.PNG"] and "differs" in reasons["NOISY_SRGB_011.PNG"]
    first = _files(dst)
    assert len(first) == 2 * 18 + 1  # input + groundtruth + manifest
    names = sorted(os.listdir(dst / "input"))
    assert names == sorted(os.listdir(dst / "groundtruth"))
    noisy = cv2.imread(str(dst / "input" / names[0]))
    gt = cv2.imread(str(dst / "groundtruth" / names[0]))
    assert noisy.shape == (64, 64, 3) and 15 < psnr(noisy / 255.0, gt / 255.0) < 40  # same window in both
    # a re-run (with worker processes) writes the very same files, no duplicates
    assert generate_patches(str(sidd_tree), str(dst), ps=64, num_patches=3, seed=5, num_workers=2,
                            progress=False)[:2] == (18, 6)
    assert _files(dst) == first
    with pytest.raises(DatasetError, match="other settings"):
        generate_patches(str(sidd_tree), str(dst), ps=32, num_patches=3, seed=5, progress=False)
    generate_patches(str(sidd_tree), str(dst), ps=32, num_patches=2, seed=5, overwrite=True, progress=False)
    assert len(os.listdir(dst / "input")) == 12
    assert not [f for f in os.listdir(dst / "input") if f.startswith(".")]


def test_grid_matches_official_windows(sidd_tree, tmp_path):
    def official(length, ps, overlap):  # the official script's window starts
        starts = list(np.arange(0, length - ps, ps - overlap, dtype=int))
        return sorted(set(starts + [length - ps]))

    for length, ps, overlap in ((3000, 512, 128), (5328, 512, 128), (512, 512, 128), (700, 256, 64)):
        assert grid_positions(length, ps, overlap) == official(length, ps, overlap)
    dst = tmp_path / "grid"
    written, used, _ = generate_patches(str(sidd_tree), str(dst), mode="grid", ps=128, overlap=32,
                                        progress=False)
    h, w = cv2.imread(str(sidd_tree / "Data" / sorted(os.listdir(sidd_tree / "Data"))[0] / "GT_SRGB_010.PNG")).shape[:2]
    assert written == used * len(official(h, 128, 32)) * len(official(w, 128, 32))


def test_generate_patches_script(sidd_tree, tmp_path):
    script = os.path.join(ROOT, "generate_patches_SIDD.py")
    dst = tmp_path / "out"
    run = subprocess.run([sys.executable, script, "--src", str(sidd_tree), "--dst", str(dst), "--ps", "48",
                          "--num_patches", "2", "--num_cores", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "skipped 3 image(s)" in run.stdout and "wrote 12 patch pairs from 6 image pairs" in run.stdout
    bad = subprocess.run([sys.executable, script, "--src", str(tmp_path / "nowhere"), "--dst", str(dst)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: SIDD folder not found")


# -- SIDD validation blocks ---------------------------------------------------------------------------------------

def test_sidd_validation_blocks(sidd_lite, tmp_path):
    ds = build_dataset({"name": "SIDDValidationBlocks", "root": str(sidd_lite / "SIDD_val")})
    raw = loadmat(str(sidd_lite / "SIDD_val" / "ValidationNoisyBlocksSrgb.mat"))["ValidationNoisyBlocksSrgb"]
    assert len(ds) == raw.shape[0] * raw.shape[1]
    noisy, gt = ds[5]
    assert noisy.shape == (3,) + raw.shape[2:4] and noisy.dtype == np.float32
    np.testing.assert_allclose(noisy, raw[1, 1].transpose(2, 0, 1) / 255.0, atol=1e-7)
    assert len(SIDDValidationBlocks(str(sidd_lite / "SIDD_val"), max_images=3)) == 3
    savemat(str(tmp_path / "ValidationNoisyBlocksSrgb.mat"), {"other": raw})
    savemat(str(tmp_path / "ValidationGtBlocksSrgb.mat"), {"ValidationGtBlocksSrgb": raw[:1]})
    with pytest.raises(DatasetError, match="differ in shape"):
        SIDDValidationBlocks(str(tmp_path))
    savemat(str(tmp_path / "ValidationGtBlocksSrgb.mat"), {"a": raw, "b": raw})
    with pytest.raises(DatasetError, match="no variable"):
        SIDDValidationBlocks(str(tmp_path))
    (tmp_path / "ValidationGtBlocksSrgb.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match="cannot read"):
        SIDDValidationBlocks(str(tmp_path))
    with pytest.raises(DatasetError, match="not found"):
        SIDDValidationBlocks(str(tmp_path / "none"))


# -- paired folders and augmentation ------------------------------------------------------------------------------

def _pair_folder(root, names, size=(40, 50), target_names=None):
    rng = np.random.default_rng(0)
    for sub, files in (("input", names), ("groundtruth", target_names or names)):
        os.makedirs(root / sub, exist_ok=True)
        for n in files:
            cv2.imwrite(str(root / sub / n), rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return root


def test_paired_dataset_crops_same_window_and_full_images(sidd_lite):
    root = sidd_lite / "SIDD_patches" / "val_mini"
    full = PairedImageDataset(str(root))
    inp_full, tgt_full = full[0]
    assert inp_full.shape == tgt_full.shape == (3, 128, 128)
    train = PairedImageDataset(str(root), patch_size=48, geometric_augs=False)
    np.random.seed(3)
    inp, tgt = train[0]
    assert inp.shape == tgt.shape == (3, 48, 48)
    # find the crop in the full image: the target crop comes from the same place
    found = [(y, x) for y in range(81) for x in range(81) if np.array_equal(inp_full[:, y:y + 48, x:x + 48], inp)]
    assert len(found) == 1
    y, x = found[0]
    np.testing.assert_array_equal(tgt, tgt_full[:, y:y + 48, x:x + 48])
    train.set_patch_size(160)  # larger than the image: padded
    assert train[0][0].shape == (3, 160, 160)
    with pytest.raises(DatasetError):
        train.set_patch_size(0)


def test_geometric_modes_are_the_eight_symmetries():
    img = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    outs = [geometric(img, m) for m in range(8)]
    assert len({o.tobytes() for o in outs}) == 8
    np.testing.assert_array_equal(outs[1], img[:, ::-1, :])
    np.testing.assert_array_equal(outs[2], np.rot90(img, 1, axes=(1, 2)))
    with pytest.raises(ValueError):
        geometric(img, 8)


def test_paired_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        PairedImageDataset(str(tmp_path / "none"))
    (tmp_path / "empty" / "input").mkdir(parents=True)
    (tmp_path / "empty" / "groundtruth").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        PairedImageDataset(str(tmp_path / "empty"))
    _pair_folder(tmp_path / "odd", ["a.png", "b.png"], target_names=["a.png", "c.png"])
    with pytest.raises(DatasetError, match=r"unmatched file names: 1 file\(s\) missing from .*\(b.png\)"):
        PairedImageDataset(str(tmp_path / "odd"))
    root = _pair_folder(tmp_path / "sizes", ["a.png"])
    cv2.imwrite(str(root / "groundtruth" / "a.png"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DatasetError, match="differ in size"):
        PairedImageDataset(str(root))[0]
    (root / "input" / "a.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="cannot read image"):
        PairedImageDataset(str(root))[0]
    with pytest.raises(ConfigError, match="unknown key"):
        build_dataset({"name": "PairedImageDataset", "root": str(root), "patchsize": 4})
    with pytest.raises(ConfigError, match="did you mean 'PairedImageDataset'"):
        build_dataset({"name": "PairedImageDatset", "root": str(root)})
