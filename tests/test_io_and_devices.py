"""Image I/O at the pipeline edge, atomic writes, device resolution."""
import os

import cv2
import numpy as np
import pytest

from utils.device import DeviceError, available_devices, resolve_device
from utils.fileio import atomic_path, atomic_write_text
from utils.image_io import ImageError, list_images, read_image, write_image


def test_rgb_8bit_round_trip(tmp_path):
    bgr = np.random.RandomState(0).randint(0, 256, (7, 9, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    img, info = read_image(str(tmp_path / "a.png"), with_info=True)
    assert img.shape == (3, 7, 9) and img.dtype == np.float32 and info.bit_depth == 8 and info.mode == "rgb"
    np.testing.assert_array_equal(np.round(img[0] * 255).astype(np.uint8), bgr[:, :, 2])  # RGB order
    write_image(str(tmp_path / "b.png"), img, info)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED), bgr)


def test_16bit_gray_and_rgba_keep_their_form(tmp_path):
    rng = np.random.RandomState(1)
    gray16 = rng.randint(0, 65536, (6, 5), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), gray16)
    img, info = read_image(str(tmp_path / "g.png"), with_info=True)
    assert info.bit_depth == 16 and info.mode == "gray" and img.shape == (3, 6, 5)
    write_image(str(tmp_path / "g_out.png"), img, info)
    back = cv2.imread(str(tmp_path / "g_out.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (6, 5)
    assert np.abs(back.astype(int) - gray16).max() <= 1
    bgra = rng.randint(0, 256, (4, 4, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    img, info = read_image(str(tmp_path / "a.png"), with_info=True)
    assert info.mode == "rgba" and img.shape == (3, 4, 4)
    write_image(str(tmp_path / "a_out.png"), img, info)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a_out.png"), cv2.IMREAD_UNCHANGED), bgra)


def test_write_clamps_and_rounds_once(tmp_path):
    img = np.full((3, 2, 2), 0.5, np.float32)
    img[0, 0, 0], img[1, 0, 0] = -0.3, 1.7
    write_image(str(tmp_path / "c.png"), img)
    out = cv2.imread(str(tmp_path / "c.png"))[:, :, ::-1]
    assert out[0, 0, 0] == 0 and out[0, 0, 1] == 255 and out[1, 1, 2] == 128


def test_bad_images(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match="cannot read"):
        read_image(str(tmp_path / "broken.png"))
    with pytest.raises(ImageError, match="not found"):
        read_image(str(tmp_path / "none.png"))
    with pytest.raises(ImageError, match="no images"):
        list_images(str(tmp_path / "*.jpg"))
    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((2, 2, 3), np.uint8))
    assert list_images(str(tmp_path)) == [str(tmp_path / "broken.png"), str(tmp_path / "x.png")]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "ckpt.bin"
    atomic_write_text(str(target), "old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["ckpt.bin"]  # no temporary left behind


def test_device_resolution_with_simulated_devices():
    cpu_only = {"cpu": 1}
    with_npu = {"cpu": 1, "npu": 8}
    with_gpu = {"cpu": 1, "gpu": 2, "npu": 8}
    assert resolve_device("auto", cpu_only) == "cpu"
    assert resolve_device("auto", with_npu) == "npu"
    assert resolve_device("auto", with_gpu) == "gpu"
    assert resolve_device("npu:3", with_npu) == "npu:3"
    assert resolve_device("GPU:1", with_gpu) == "gpu:1"
    with pytest.raises(DeviceError, match="paddle-custom-npu"):
        resolve_device("npu:0", cpu_only)
    with pytest.raises(DeviceError, match="available: cpu"):
        resolve_device("gpu", cpu_only)
    with pytest.raises(DeviceError, match="8 npu"):
        resolve_device("npu:8", with_npu)
    with pytest.raises(DeviceError, match="invalid device"):
        resolve_device("npu:x", with_npu)


def test_available_devices_on_this_build():
    found = available_devices(custom_types=[("mlu", 2)], cuda_count=0)
    assert found == {"cpu": 1, "mlu": 2}
    assert "cpu" in available_devices()


def test_atomic_files_get_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(str(tmp_path / "a.txt"), "x")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "a.txt").st_mode & 0o777) == 0o644
