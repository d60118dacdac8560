"""Lite data sets made offline, in seconds, from the photographs that ship inside scikit-image.

Each task writes the same folder layout as the real data set it imitates, so every script and the TIPC
chains run on a fresh machine with no download.  Output is deterministic for a seed and written atomically.
Tasks register in ``LITE_TASKS`` as ``name -> function(out_root, seed) -> summary string``.
"""
import numpy as np

# Colour photographs bundled with scikit-image (no download needed).
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "motorcycle_left", "rocket", "immunohistochemistry",
               "hubble_deep_field", "motorcycle_right", "retina", "cat", "colorwheel")


def photo_sources(names=PHOTO_NAMES):
    """Yield (name, uint8 RGB H x W x 3) for each available bundled colour photograph."""
    from skimage import data

    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            img = np.asarray(loader())
        except Exception:  # a photograph missing from this scikit-image build
            continue
        if isinstance(img, tuple):
            img = img[0]
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[2] >= 3 and img.dtype == np.uint8:
            yield name, np.ascontiguousarray(img[:, :, :3])


LITE_TASKS = {}


# ---- bsds: a BSDS300-like folder of clean photographs (DMSP denoiser training and restoration demos)

BSDS_TRAIN, BSDS_TEST = 12, 8


def _bsds_crops(seed, count):
    """``count`` deterministic 160 x 240 (or 240 x 160) crops of the bundled photographs at BSDS scale."""
    import cv2

    rng = np.random.default_rng(seed)
    photos = []
    for _, img in photo_sources():
        scale = 321.0 / min(img.shape[:2])  # BSDS300 images are 481 x 321
        size = (max(int(round(img.shape[1] * scale)), 240), max(int(round(img.shape[0] * scale)), 240))
        photos.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC))
    if not photos:
        raise RuntimeError("no colour photographs found in scikit-image (pip install scikit-image)")
    for i in range(count):
        img = photos[i % len(photos)]
        ch, cw = (160, 240) if i % 2 == 0 else (240, 160)
        top, left = rng.integers(0, img.shape[0] - ch + 1), rng.integers(0, img.shape[1] - cw + 1)
        yield np.ascontiguousarray(img[top:top + ch, left:left + cw])


def make_bsds(out_root, seed=0):
    """``out_root/BSDS300/images/{train,test}/*.jpg``: 12 + 8 clean photographs in the BSDS300 layout."""
    import os
    import shutil
    import tempfile

    import cv2

    final = os.path.join(out_root, "BSDS300")
    os.makedirs(out_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".BSDS300.", dir=out_root)
    try:
        crops = _bsds_crops(seed, BSDS_TRAIN + BSDS_TEST)
        for split, count, first in (("train", BSDS_TRAIN, 1000), ("test", BSDS_TEST, 9000)):
            folder = os.path.join(tmp, "images", split)
            os.makedirs(folder)
            for i in range(count):
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(next(crops), cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, 95])
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
                with open(os.path.join(folder, f"{first + i}.jpg"), "wb") as f:
                    f.write(buf.tobytes())
        os.chmod(tmp, 0o755)  # mkdtemp creates it private
        old = None
        if os.path.exists(final):  # swap in the new tree, then drop the old one
            old = tempfile.mkdtemp(prefix=".BSDS300.old.", dir=out_root)
            os.replace(final, os.path.join(old, "BSDS300"))
        os.replace(tmp, final)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return f"{final}: images/train {BSDS_TRAIN}, images/test {BSDS_TEST} (clean JPEGs, BSDS300 layout)"


LITE_TASKS["bsds"] = make_bsds
