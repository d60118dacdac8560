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

from .errors import ImageError
from .fileio import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# (input, ground truth) sub-folder names of a paired folder, in the order they are looked for
PAIRED_LAYOUTS = (("input", "groundtruth"), ("input", "target"), ("noisy", "clean"), ("blur", "sharp"))


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


def image_names(folder):
    """Sorted names of the image files in ``folder`` (hidden files left out)."""
    return sorted(f for f in os.listdir(folder) if is_image_file(f) and not f.startswith("."))


def paired_folder(path):
    """(input folder, ground-truth folder) when ``path`` is a folder in a paired layout, else None."""
    if os.path.isdir(path):
        for inp, gt in PAIRED_LAYOUTS:
            if os.path.isdir(os.path.join(path, inp)) and os.path.isdir(os.path.join(path, gt)):
                return os.path.join(path, inp), os.path.join(path, gt)
    return None


def _unmatched(lonely_inputs, lonely_targets, input_folder, target_folder):
    parts = []
    for items, where in ((lonely_inputs, target_folder), (lonely_targets, input_folder)):
        if items:
            more = f" and {len(items) - 2} more" if len(items) > 2 else ""
            parts.append(f"{len(items)} file(s) missing from {where} ({', '.join(items[:2])}{more})")
    return ImageError("unmatched file names: " + "; ".join(parts) + "; remove the images without a partner or add "
                      "their partners")


def match_ground_truth(files, gt, strict=False):
    """The ground-truth path of each input file: the file of the same name in folder ``gt``, else (unless
    ``strict``) one of the same stem with another image extension; a single file ``gt`` pairs a single input.

    Lenient (restoring images, some with a reference): unmatched inputs get None.  ``strict`` (data sets): every
    input needs its equally named partner and every ground-truth image its input, else ImageError naming them."""
    if gt is None:
        return [None] * len(files)
    if os.path.isfile(gt):
        if len(files) != 1:
            raise ImageError(f"ground truth {gt} is one file but there are {len(files)} inputs; pass a folder")
        return [gt]
    if not os.path.isdir(gt):
        raise ImageError(f"ground truth not found: {gt}")
    names = image_names(gt)
    if strict:
        given = [os.path.basename(f) for f in files]
        lonely_in, lonely_gt = sorted(set(given) - set(names)), sorted(set(names) - set(given))
        if lonely_in or lonely_gt:
            raise _unmatched(lonely_in, lonely_gt, os.path.dirname(files[0]) if files else "", gt)
        return [os.path.join(gt, f) for f in given]
    by_stem = {}
    for f in names:
        by_stem.setdefault(os.path.splitext(f)[0], os.path.join(gt, f))
    out = []
    for f in files:
        base = os.path.basename(f)
        same = os.path.join(gt, base)
        out.append(same if os.path.isfile(same) else by_stem.get(os.path.splitext(base)[0]))
    if not any(out):
        raise ImageError(f"no ground truth in {gt} matches the input names (e.g. {os.path.basename(files[0])})")
    return out


def folder_pairs(input_folder, target_folder):
    """(input path, target path) of every equally named image pair of two folders (the data sets' pairing)."""
    for folder in (input_folder, target_folder):
        if not os.path.isdir(folder):
            raise ImageError(f"data folder not found: {folder}")
    names = image_names(input_folder)
    if not names:
        raise ImageError(f"no images in {input_folder}")
    files = [os.path.join(input_folder, f) for f in names]
    return list(zip(files, match_ground_truth(files, target_folder, strict=True)))
