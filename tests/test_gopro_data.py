"""GoPro data: lite data generation, the GOPRO_Large preparation script, the paired datasets."""
import hashlib
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import prepare_GoPro
from dataloaders import DatasetError, build_dataset
from dataloaders.prepare.lite_data import LITE_TASKS
from utils.config import ConfigError

from conftest import ROOT


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    root = tmp_path_factory.mktemp("lite")
    LITE_TASKS["gopro"](str(root), 0)
    return root


def _tree(root):
    """{relative path: (sha1, size, mtime_ns, mode)} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (hashlib.sha1(open(p, "rb").read()).hexdigest(), st.st_size,
                                             st.st_mtime_ns, st.st_mode)
    return out


# ------------------------------------------------------------------ lite data
def test_lite_layout_and_size(lite):
    for split, n in (("train", 32), ("test", 8)):
        for kind in ("blur", "sharp"):
            assert len(os.listdir(lite / "GOPRO" / split / kind)) == n
        seqs = os.listdir(lite / "GOPRO_Large" / split)
        assert sum(len(os.listdir(lite / "GOPRO_Large" / split / s / "blur_gamma")) for s in seqs) == n
    inodes = {}
    for dirpath, _, files in os.walk(lite):
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            inodes[(st.st_dev, st.st_ino)] = st.st_size
    assert sum(inodes.values()) < 20e6
    assert not [f for f in os.listdir(lite) if f.startswith(".")]  # no temporary folder left behind


def test_lite_is_deterministic_and_blurred(lite, tmp_path):
    LITE_TASKS["gopro"](str(tmp_path), 0)
    assert {k: v[0] for k, v in _tree(tmp_path).items()} == {k: v[0] for k, v in _tree(lite).items()}
    name = sorted(os.listdir(lite / "GOPRO" / "test" / "blur"))[0]
    blur = cv2.imread(str(lite / "GOPRO" / "test" / "blur" / name)).astype(np.float64)
    sharp = cv2.imread(str(lite / "GOPRO" / "test" / "sharp" / name)).astype(np.float64)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((blur - sharp) ** 2))
    assert 15 < psnr < 35
    # blur removes detail: less gradient energy than the sharp frame
    assert np.abs(np.diff(blur, axis=1)).mean() < 0.8 * np.abs(np.diff(sharp, axis=1)).mean()


def test_lite_blur_follows_the_horizontal_pan(lite):
    """The camera pans horizontally, so the frames lose more horizontal than vertical detail (the share of
    vertical / horizontal gradient energy kept by the blur, over each split; single frames of very fine texture
    can go either way when the blur is only a few pixels long)."""
    for split in ("train", "test"):
        kept = []
        for name in sorted(os.listdir(lite / "GOPRO" / split / "blur")):
            blur = cv2.imread(str(lite / "GOPRO" / split / "blur" / name), cv2.IMREAD_GRAYSCALE).astype(np.float64)
            sharp = cv2.imread(str(lite / "GOPRO" / split / "sharp" / name), cv2.IMREAD_GRAYSCALE).astype(np.float64)
            kept.append([np.abs(np.diff(blur, axis=a)).mean() / np.abs(np.diff(sharp, axis=a)).mean() for a in (0, 1)])
        vertical, horizontal = np.mean(kept, axis=0)
        assert horizontal < 0.9 * vertical, (split, vertical, horizontal)
        assert np.mean([h < v for v, h in kept]) >= 0.75, (split, kept)


# ------------------------------------------------------------------ preparation script
@pytest.mark.parametrize("link", [False, True])
def test_prepare_leaves_source_untouched(lite, tmp_path, link):
    src, dst = lite / "GOPRO_Large", tmp_path / "GOPRO"
    before = _tree(src)
    prepare_GoPro.main(["--root_src", str(src), "--root_dst", str(dst)] + (["--link"] if link else []))
    assert _tree(src) == before
    out = _tree(dst)
    assert len(out) == 2 * (32 + 8)  # blur and sharp of every train and test pair
    for rel, (sha, *_rest) in out.items():
        split, kind, flat = rel.split(os.sep)
        seq, frame = flat[:len("GOPR0000_11_00")], flat[len("GOPR0000_11_00") + 1:]
        assert before[os.path.join(split, seq, kind, frame)][0] == sha
        assert os.path.samefile(dst / rel, src / split / seq / kind / frame) == link
    # a second run finds everything in place and changes nothing
    prepare_GoPro.main(["--root_src", str(src), "--root_dst", str(dst)] + (["--link"] if link else []))
    assert _tree(dst) == out and _tree(src) == before


def test_prepare_blur_gamma_and_copy_over_links(lite, tmp_path):
    src, dst = lite / "GOPRO_Large", tmp_path / "GOPRO"
    before = _tree(src)
    prepare_GoPro.main(["--root_src", str(src), "--root_dst", str(dst), "--link", "--splits", "test"])
    prepare_GoPro.main(["--root_src", str(src), "--root_dst", str(dst), "--blur-gamma", "--splits", "test"])
    assert not (dst / "train").exists()
    seq = sorted(os.listdir(src / "test"))[0]
    flat = dst / "test" / "blur" / f"{seq}_000001.png"
    assert open(flat, "rb").read() == open(src / "test" / seq / "blur_gamma" / "000001.png", "rb").read()
    sharp = dst / "test" / "sharp" / f"{seq}_000001.png"
    assert not os.path.samefile(sharp, src / "test" / seq / "sharp" / "000001.png")
    assert _tree(src) == before


def _small_gopro_large(root, broken=None):
    for split in ("train", "test"):
        for kind in ("blur", "sharp"):
            d = root / split / "GOPR0001_07_00" / kind
            d.mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(d / f"{i:06d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    if broken == "unpaired":
        os.remove(root / "test" / "GOPR0001_07_00" / "sharp" / "000001.png")
    elif broken == "no_sharp":
        for f in os.listdir(root / "train" / "GOPR0001_07_00" / "sharp"):
            os.remove(root / "train" / "GOPR0001_07_00" / "sharp" / f)
        os.rmdir(root / "train" / "GOPR0001_07_00" / "sharp")
    elif broken == "no_test":
        import shutil

        shutil.rmtree(root / "test")


@pytest.mark.parametrize("broken, message", [("unpaired", "without a partner"), ("no_sharp", "no sharp/ folder"),
                                             ("no_test", "no test/ folder")])
def test_prepare_reports_problems_before_writing(tmp_path, broken, message):
    src, dst = tmp_path / "GOPRO_Large", tmp_path / "out"
    _small_gopro_large(src, broken)
    with pytest.raises(DatasetError, match=message):
        prepare_GoPro.main(["--root_src", str(src), "--root_dst", str(dst)])
    assert not dst.exists()


def test_prepare_cli_errors(tmp_path):
    src = tmp_path / "GOPRO_Large"
    _small_gopro_large(src)
    script = os.path.join(ROOT, "prepare_GoPro.py")
    for args, message in ((["--root_src", str(tmp_path / "missing")], "not found"),
                          (["--root_src", str(src), "--root_dst", str(src / "flat")], "outside the source")):
        res = subprocess.run([sys.executable, script] + args, capture_output=True, text=True, cwd=str(tmp_path))
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.strip().startswith("error:") and message in res.stderr
    assert not (src / "flat").exists()


# ------------------------------------------------------------------ datasets
def _paired_folder(root, n=3, size=(20, 30)):
    """sharp: R = 12 * row, G = 8 * column, B = 100; blur = sharp / 2 exactly.  Any crop, flip or channel
    permutation can be read back from the values, and a mismatch between the two images shows."""
    rows, cols = np.mgrid[:size[0], :size[1]]
    sharp = np.stack([12 * rows, 8 * cols, np.full(size, 100)], axis=-1).astype(np.uint8)
    for kind in ("blur", "sharp"):
        (root / kind).mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "sharp" / f"s_{i}.png"), cv2.cvtColor(sharp, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "blur" / f"s_{i}.png"), cv2.cvtColor(sharp // 2, cv2.COLOR_RGB2BGR))
    return root


def _decode(patch):
    """(top, left, flipped, channel order) of a patch of the coded image."""
    v = np.round(patch * 255).astype(int)
    red = int(np.argmax([c.std(axis=0).mean() for c in v]))  # the channel that changes down the rows
    green = int(np.argmax([c.std(axis=1).mean() for c in v]))  # the one that changes along the rows
    order = (red, green, 3 - red - green)
    r, g, b = v[order[0]], v[order[1]], v[order[2]]
    assert (b == 100).all() and (np.diff(r, axis=0) == 12).all() and (np.abs(np.diff(g, axis=1)) == 8).all()
    flipped = bool(g[0, 1] < g[0, 0])
    return r[0, 0] // 12, (g[0, -1] if flipped else g[0, 0]) // 8, flipped, tuple(order)


def test_train_dataset_pairs_stay_aligned(tmp_path):
    root = _paired_folder(tmp_path / "train")
    ds = build_dataset({"name": "GoProDataset", "root": str(root), "patch_size": 8, "rgb_shuffle": True})
    assert len(ds) == 3
    np.random.seed(0)
    seen = []
    for _ in range(40):
        inp, tgt = ds[0]
        assert inp.dtype == tgt.dtype == np.float32 and inp.shape == tgt.shape == (3, 8, 8)
        assert inp.flags["C_CONTIGUOUS"] and 0 <= inp.min() and tgt.max() <= 1
        np.testing.assert_allclose(inp * 2, tgt, atol=1e-6)
        top, left, flipped, order = _decode(tgt)
        assert 0 <= top <= 12 and 0 <= left <= 22
        seen.append((top, left, flipped, order))
    assert len({(top, left) for top, left, _, _ in seen}) > 10
    assert 10 < sum(f for _, _, f, _ in seen) < 30
    assert len({o for *_, o in seen}) >= 4
    ds.set_patch_size(16)
    assert ds[1][0].shape == (3, 16, 16)
    ds.set_patch_size(21)
    with pytest.raises(DatasetError, match="smaller than patch_size"):
        ds[0]


def test_train_dataset_without_augmentation_is_a_plain_crop(tmp_path):
    root = _paired_folder(tmp_path / "train", n=1, size=(8, 8))
    ds = build_dataset({"name": "GoProDataset", "root": str(root), "patch_size": 8, "hflip": False})
    full = cv2.cvtColor(cv2.imread(str(root / "sharp" / "s_0.png")), cv2.COLOR_BGR2RGB).transpose(2, 0, 1) / 255.0
    for _ in range(5):
        np.testing.assert_allclose(ds[0][1], full, atol=1e-6)
        assert _decode(ds[0][1]) == (0, 0, False, (0, 1, 2))


def test_test_dataset_whole_images_in_name_order(lite):
    ds = build_dataset({"name": "GoProTestDataset", "root": str(lite / "GOPRO" / "test")})
    assert len(ds) == 8 and ds.names == sorted(ds.names)
    inp, tgt = ds[0]
    assert inp.shape == tgt.shape == (3, 256, 320) and inp.dtype == np.float32
    assert not hasattr(ds, "set_patch_size")
    third = build_dataset({"name": "GoProTestDataset", "root": str(lite / "GOPRO" / "test"), "every": 3})
    assert third.names == ds.names[::3] and len(third) == 3
    np.testing.assert_array_equal(third[1][0], ds[3][0])
    for bad in (0, 1.5, True):
        with pytest.raises(DatasetError, match="every must be a positive integer"):
            build_dataset({"name": "GoProTestDataset", "root": str(lite / "GOPRO" / "test"), "every": bad})


def test_dataset_errors(tmp_path):
    root = _paired_folder(tmp_path / "d")
    with pytest.raises(DatasetError, match="not found"):
        build_dataset({"name": "GoProTestDataset", "root": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="patch_size"):
        build_dataset({"name": "GoProDataset", "root": str(root), "patchsize": 8})
    with pytest.raises(DatasetError, match="positive integer"):
        build_dataset({"name": "GoProDataset", "root": str(root), "patch_size": 0})
    cv2.imwrite(str(root / "blur" / "extra.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="extra.png"):
        build_dataset({"name": "GoProTestDataset", "root": str(root)})
    cv2.imwrite(str(root / "sharp" / "extra.png"), np.zeros((5, 4, 3), np.uint8))
    ds = build_dataset({"name": "GoProTestDataset", "root": str(root)})
    with pytest.raises(DatasetError, match="differ in size"):
        ds[ds.names.index("extra.png")]
    (root / "sharp" / "extra.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="extra.png"):
        ds[ds.names.index("extra.png")]
    empty = tmp_path / "empty"
    (empty / "blur").mkdir(parents=True)
    (empty / "sharp").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        build_dataset({"name": "GoProTestDataset", "root": str(empty)})
