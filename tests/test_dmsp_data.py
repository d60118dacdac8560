"""DAE training data: the Gaussian-noise image-folder dataset and the lite BSDS300-like data set."""
import os

import cv2
import numpy as np
import pytest

from dataloaders import DATASETS, DatasetError, build_dataset
from dataloaders.prepare.lite_data import LITE_TASKS, make_bsds
from utils.config import ConfigError


@pytest.fixture(scope="module")
def bsds(tmp_path_factory):
    root = tmp_path_factory.mktemp("lite")
    make_bsds(str(root), seed=0)
    return os.path.join(str(root), "BSDS300")


def test_lite_bsds_layout_and_determinism(bsds, tmp_path):
    assert "bsds" in LITE_TASKS
    train = sorted(os.listdir(os.path.join(bsds, "images", "train")))
    test = sorted(os.listdir(os.path.join(bsds, "images", "test")))
    assert len(train) == 12 and len(test) == 8 and all(f.endswith(".jpg") for f in train + test)
    img = cv2.imread(os.path.join(bsds, "images", "train", train[0]))
    assert img.shape in ((160, 240, 3), (240, 160, 3)) and img.std() > 5
    make_bsds(str(tmp_path), seed=0)
    again = os.path.join(str(tmp_path), "BSDS300", "images", "test", test[3])
    assert open(again, "rb").read() == open(os.path.join(bsds, "images", "test", test[3]), "rb").read()
    make_bsds(str(tmp_path), seed=0)  # regenerating replaces the tree, leaving no temporary folders
    assert os.listdir(str(tmp_path)) == ["BSDS300"]
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(str(tmp_path)) for f in fs)
    assert total < 2_000_000


def test_lite_bsds_motion_kernels_load_for_deblurring(bsds):
    from utils.dmsp.restore import load_kernel

    stack = np.load(os.path.join(bsds, "kernels.npy"))
    assert stack.shape == (4, 15, 15) and np.allclose(stack.sum(axis=(1, 2)), 1.0, atol=1e-5)
    k = load_kernel(os.path.join(bsds, "kernels.npy"), index=3)
    assert np.array_equal(k, stack[3].astype(np.float32) / stack[3].sum())
    # a motion blur: the longest kernel spreads over many pixels, unlike a delta
    assert (k > 1e-3).sum() >= 13 and k.max() < 0.2


def test_dataset_contract(bsds):
    assert "GaussianNoiseFolder" in DATASETS
    ds = build_dataset({"name": "GaussianNoiseFolder", "root": bsds, "split": "train", "patch_size": 48,
                        "sigma": 11.0, "repeat": 2})
    assert len(ds) == 24
    noisy, clean = ds[5]
    assert noisy.dtype == clean.dtype == np.float32
    assert noisy.shape == clean.shape == (3, 48, 48)
    assert 0.0 <= clean.min() and clean.max() <= 1.0
    std = (noisy - clean).std()
    assert abs(std - 11.0 / 255.0) < 0.004  # sigma 11 on the 0-255 scale
    ds.set_patch_size(32)
    assert ds[0][0].shape == (3, 32, 32)
    a, b = ds[1][1], ds[1][1]
    assert not np.array_equal(a, b)  # training: fresh crops / augmentation / noise


def test_validation_split_is_whole_and_fixed(bsds):
    ds = build_dataset({"name": "GaussianNoiseFolder", "root": bsds, "split": "test", "patch_size": None,
                        "augment": False, "seed": 3})
    assert len(ds) == 8
    n1, c1 = ds[2]
    n2, c2 = ds[2]
    np.testing.assert_array_equal(n1, n2)
    assert c1.shape[1:] in ((160, 240), (240, 160))
    other = build_dataset({"name": "GaussianNoiseFolder", "root": bsds, "split": "test", "patch_size": None,
                           "augment": False, "seed": 4})
    np.testing.assert_array_equal(other[2][1], c1)
    assert not np.array_equal(other[2][0], n1)


def test_plain_folder_and_small_images(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), 128, np.uint8))
    ds = build_dataset({"name": "GaussianNoiseFolder", "root": str(tmp_path), "patch_size": 40})
    noisy, clean = ds[0]
    assert clean.shape == (3, 40, 40) and np.allclose(clean, 128 / 255.0)


def test_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        build_dataset({"name": "GaussianNoiseFolder", "root": str(tmp_path / "missing")})
    with pytest.raises(DatasetError, match="no images"):
        build_dataset({"name": "GaussianNoiseFolder", "root": str(tmp_path)})
    with pytest.raises(ConfigError, match="unknown key"):
        build_dataset({"name": "GaussianNoiseFolder", "root": str(tmp_path), "noise": 11})
    (tmp_path / "bad.png").write_bytes(b"not an image")
    ds = build_dataset({"name": "GaussianNoiseFolder", "root": str(tmp_path)})
    with pytest.raises(DatasetError, match="cannot read"):
        ds[0]
