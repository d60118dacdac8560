"""Image reading and writing at the edge of the pipeline.

Inside the project an image is float32 RGB in [0, 1], shape (3, H, W).  ``read_image`` converts once from
whatever is on disk (8- or 16-bit, grayscale, RGB, RGBA) and returns an ``ImageInfo`` that ``write_image``
uses to write the result back in the same form (bit depth, grayscale, alpha channel restored).  Values are
clamped and rounded once, when written; writes are atomic.
"""
import dataclasses
import os

import cv2
import numpy as np

from .fileio import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageError(ValueError):
    """Unreadable, unsupported or mismatched image; the message is one line naming the file."""


@dataclasses.dataclass
class ImageInfo:
    bit_depth: int = 8          # 8 or 16
    mode: str = "rgb"           # "gray", "rgb" or "rgba"
    alpha: np.ndarray = None    # H x W alpha channel in the file's integer type, for "rgba"


def is_image_file(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def read_image(path, with_info=False):
    """Read an image file as float32 RGB (3, H, W) in [0, 1] (and its ImageInfo if ``with_info``)."""
    if not os.path.isfile(path):
        raise ImageError(f"image not found: {path}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ImageError(f"cannot read image (corrupt or unsupported format): {path}")
    if raw.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif raw.dtype == np.uint16:
        depth, scale = 16, 65535.0
    else:
        raise ImageError(f"unsupported pixel type {raw.dtype} (8- or 16-bit images only): {path}")
    info = ImageInfo(bit_depth=depth)
    if raw.ndim == 2 or raw.shape[2] == 1:
        info.mode = "gray"
        rgb = np.repeat(raw.reshape(raw.shape[0], raw.shape[1], 1), 3, axis=2)
    elif raw.shape[2] == 3:
        rgb = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    elif raw.shape[2] == 4:
        info.mode, info.alpha = "rgba", raw[:, :, 3].copy()
        rgb = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
    else:
        raise ImageError(f"unsupported channel count {raw.shape[2]}: {path}")
    img = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(scale)
    return (img, info) if with_info else img


def to_uint(img, bit_depth=8):
    """float (3, H, W) or (H, W, 3) in [0, 1] -> rounded uint8 / uint16 array of the same layout."""
    top = 255.0 if bit_depth == 8 else 65535.0
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * top).astype(dtype)


def encode_image(img, path, info=None):
    """Encode a float RGB (3, H, W) image in [0, 1] for ``path``'s format, restoring ``info``'s form."""
    info = info or ImageInfo()
    ext = os.path.splitext(str(path))[1].lower() or ".png"
    depth = info.bit_depth if ext in (".png", ".tif", ".tiff") else 8
    arr = to_uint(np.asarray(img).transpose(1, 2, 0), depth)
    if info.mode == "gray":
        out = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    else:
        out = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
        if info.mode == "rgba" and info.alpha is not None:
            alpha = info.alpha
            if alpha.shape != out.shape[:2]:
                alpha = cv2.resize(alpha, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
            out = np.dstack([out, alpha.astype(out.dtype) if depth == info.bit_depth else to_uint(
                alpha / (255.0 if info.bit_depth == 8 else 65535.0), depth)])
    ok, buf = cv2.imencode(ext, out)
    if not ok:
        raise ImageError(f"cannot encode image as {ext}: {path}")
    return buf.tobytes()


def write_image(path, img, info=None):
    """Clamp, round and atomically write a float RGB (3, H, W) image in [0, 1]."""
    atomic_write_bytes(path, encode_image(img, path, info))


def list_images(path):
    """Image files of a file, a folder (sorted, not recursive) or a glob pattern."""
    import glob

    path = str(path)
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in sorted(os.listdir(path)) if is_image_file(f)]
    elif os.path.isfile(path):
        files = [path]
    else:
        files = sorted(f for f in glob.glob(path) if os.path.isfile(f) and is_image_file(f))
    if not files:
        raise ImageError(f"no images found at {path}")
    return files
