"""Lite data sets made offline, in seconds, from the photographs that ship inside scikit-image.

Each task writes the same folder layout as the real data set it imitates, so every script and the TIPC
chains run on a fresh machine with no download.  Output is deterministic for a seed and written atomically.
Tasks register in ``LITE_TASKS`` as ``name -> function(out_root, seed) -> summary string``.
"""
import contextlib
import io
import os
import shutil
import tempfile

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


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers for the tasks
# ---------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def staged_dir(path):
    """Build a folder in a hidden sibling and swap it in only when complete.

    An interrupted run leaves the previous folder (or nothing), never a half-written one."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; give it the usual permissions
    try:
        yield tmp
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=parent)
            os.replace(path, os.path.join(old, name))
        os.replace(tmp, path)
        if old:
            shutil.rmtree(old)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def write_png(path, rgb):
    """Write a uint8 RGB H x W x 3 array as PNG (callers write inside a ``staged_dir``)."""
    import cv2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def folder_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _resize_short_side(img, short):
    import cv2

    h, w = img.shape[:2]
    s = short / min(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (max(short, round(w * s)), max(short, round(h * s))), interpolation=cv2.INTER_AREA)


def _random_crop(img, size, rng, band=(0.0, 1.0)):
    """Random ``size`` x ``size`` crop from the ``band`` (fractions) of the image's longer axis."""
    h, w = img.shape[:2]
    long_axis = 0 if h > w else 1
    n = img.shape[long_axis]
    lo, hi = int(band[0] * n), int(band[1] * n)
    a = int(rng.integers(lo, hi - size + 1))
    b = int(rng.integers(0, img.shape[1 - long_axis] - size + 1))
    y, x = (a, b) if long_axis == 0 else (b, a)
    return img[y:y + size, x:x + size]


# ---------------------------------------------------------------------------------------------------------------
# Task 'sidd': SIDD-like real-noise denoising data (MIRNetV2)
# ---------------------------------------------------------------------------------------------------------------

TRAIN_BAND, VAL_BAND = (0.0, 0.6), (0.6, 1.0)
SIDD_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field",
               "colorwheel")


def srgb_to_linear(x):
    """Inverse sRGB transfer curve (IEC 61966-2-1), float in [0, 1]."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(y):
    y = np.clip(y, 0.0, 1.0)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.maximum(y, 0.0031308) ** (1 / 2.4) - 0.055)


def camera_noise(clean, rng):
    """Noisy uint8 sRGB version of a clean uint8 sRGB image, imitating a phone camera.

    The image is taken back to linear light and divided by random white-balance gains (the sensor's view);
    heteroscedastic Gaussian noise with variance ``shot * signal + read`` (Poisson shot noise and read noise,
    with random gains per image) is added there; then the white balance and the sRGB curve are re-applied and
    the result is quantised to 8 bits.  Dark regions and the red/blue channels end up noisier, as in SIDD.
    """
    x = srgb_to_linear(clean.astype(np.float64) / 255.0)
    wb = np.array([rng.uniform(1.5, 2.3), 1.0, rng.uniform(1.3, 1.9)])
    shot = np.exp(rng.uniform(np.log(1.5e-3), np.log(8e-3)))
    read = np.exp(rng.uniform(np.log(5e-6), np.log(1e-4)))
    raw = x / wb
    noisy = raw + rng.standard_normal(raw.shape) * np.sqrt(shot * raw + read)
    return np.round(linear_to_srgb(noisy * wb) * 255.0).astype(np.uint8)


def _sidd_photos():
    """Clean photographs with a short side of 384 (downscaled with area averaging, which also cleans them)."""
    photos = [(name, _resize_short_side(img, 384)) for name, img in photo_sources(SIDD_PHOTOS)]
    if len(photos) < 4:
        raise RuntimeError("scikit-image ships fewer than 4 of the expected photographs; cannot build lite data")
    return photos


def _sidd_pairs(photos, rng, per_photo, size, band):
    for name, img in photos:
        for k in range(per_photo):
            clean = _random_crop(img, size, rng, band)
            yield f"{name}_{k}", clean, camera_noise(clean, rng)


def _sidd_patch_sets(folder, photos, rng):
    """SIDD_patches/{train_mini,val_mini}/{input,groundtruth}: training crops from the first 60 % of each
    photo's longer axis, validation crops from the rest, so the two sets never share pixels."""
    for split, per_photo, size, band in (("train_mini", 2, 192, TRAIN_BAND), ("val_mini", 1, 128, VAL_BAND)):
        for stem, clean, noisy in _sidd_pairs(photos, rng, per_photo, size, band):
            write_png(os.path.join(folder, split, "groundtruth", f"{stem}.png"), clean)
            write_png(os.path.join(folder, split, "input", f"{stem}.png"), noisy)


def _sidd_medium_tree(folder, photos, rng):
    """A tiny SIDD-Medium sRGB tree: Data/<scene>/{GT,NOISY}_SRGB_010.PNG and the _011 pair (two noise
    realisations of the same scene, as in the real set)."""
    for i, (name, img) in enumerate(photos[:3]):
        scene = f"{i + 1:04d}_001_S6_00{100 * (i + 1)}_00060_3200_L"
        crop = _random_crop(img, 256, rng)[:200]
        for take in ("010", "011"):
            scene_dir = os.path.join(folder, "Data", scene)
            write_png(os.path.join(scene_dir, f"GT_SRGB_{take}.PNG"), crop)
            write_png(os.path.join(scene_dir, f"NOISY_SRGB_{take}.PNG"), camera_noise(crop, rng))


def _sidd_validation_blocks(folder, photos, rng, images=2, blocks=4, size=64):
    """SIDD_val/Validation{Noisy,Gt}BlocksSrgb.mat: uint8 arrays (images, blocks, size, size, 3) under the
    official key names, cut from the validation band of the photographs."""
    from scipy.io import savemat

    gt = np.zeros((images, blocks, size, size, 3), np.uint8)
    noisy = np.zeros_like(gt)
    for i, (name, img) in enumerate(photos[:images]):
        for b in range(blocks):
            gt[i, b] = _random_crop(img, size, rng, VAL_BAND)
            noisy[i, b] = camera_noise(gt[i, b], rng)
    for key, arr in (("ValidationGtBlocksSrgb", gt), ("ValidationNoisyBlocksSrgb", noisy)):
        buf = io.BytesIO()
        savemat(buf, {key: arr})
        data = bytearray(buf.getvalue())
        # The MAT-file header text carries a creation time; fix it so the output is byte-for-byte reproducible.
        data[:116] = b"MATLAB 5.0 MAT-file, lite SIDD validation blocks".ljust(116)
        with open(os.path.join(folder, f"{key}.mat"), "wb") as f:
            f.write(bytes(data))


SIDD_FOLDERS = ("SIDD_patches", "SIDD_Medium_Srgb", "SIDD_val")


def make_sidd(out_root, seed=0):
    """Task 'sidd': paired patches for training/validation, a fake SIDD-Medium tree for the patch script and
    fake validation .mat blocks, each folder swapped in atomically."""
    photos = _sidd_photos()
    builders = {"SIDD_patches": _sidd_patch_sets, "SIDD_Medium_Srgb": _sidd_medium_tree,
                "SIDD_val": _sidd_validation_blocks}
    for i, folder in enumerate(SIDD_FOLDERS):
        rng = np.random.default_rng([seed, i])
        with staged_dir(os.path.join(out_root, folder)) as tmp:
            builders[folder](tmp, photos, rng)
    size = sum(folder_size(os.path.join(out_root, f)) for f in SIDD_FOLDERS)
    return f"SIDD lite data in {os.path.join(out_root, '')}{{{','.join(SIDD_FOLDERS)}}} ({size / 1e6:.1f} MB)"


LITE_TASKS["sidd"] = make_sidd


# ------------------------------------------------------------------ gopro: GoPro-like motion blur
# Sequences (one photograph each, several frames panning across it); train and test use different photos
# (chelsea and cat are the same picture, so only one of them is used).
GOPRO_LITE_TEST = ("coffee", "chelsea")
GOPRO_LITE_TRAIN = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")
GOPRO_LITE_FRAMES = {"train": 8, "test": 4}
GOPRO_LITE_SIZE = (256, 320)  # H, W of every frame
# Camera travel during the exposure, in pixels.  GoPro frames are 1280 x 720 with blur trails of roughly 10-50
# pixels; the lite frames are a quarter of that width, so the same motion leaves a quarter of the trail.
GOPRO_LITE_BLUR = (3.0, 12.0)
# Each sequence pans horizontally across its photograph, so during an exposure the camera travels along a
# straight line within 10 degrees of the pan direction (plus a slight roll).  GoPro's hand-held blur turns in
# every direction; blind deblurring of that needs far more training than a CPU gives in minutes (a 10-minute
# run gains ~0.1 dB on it), while pan blur of varying length and angle is learnt in that time.
GOPRO_LITE_MOTION = {"heading_spread": 10.0, "shake": 0.0}


def _camera_path(rng, n_sub, length, max_angle, heading_spread, shake):
    """Sub-frame camera poses (dx, dy, degrees) along a random smooth trajectory, centred on the middle one.

    A velocity with inertia and random acceleration of scale ``shake`` (a shaky hand-held pan) that starts
    within ``heading_spread`` degrees of the pan direction (+x), scaled to ``length`` pixels of travel, plus a
    slow roll of up to ``max_angle`` degrees.
    """
    heading = np.deg2rad(rng.uniform(-heading_spread, heading_spread))
    vel = np.array([np.cos(heading), np.sin(heading)])
    pts = [np.zeros(2)]
    for _ in range(n_sub - 1):
        vel = 0.8 * vel + rng.normal(0, shake, 2)
        pts.append(pts[-1] + vel)
    pts = np.array(pts)
    travel = np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()
    pts = (pts - pts[n_sub // 2]) * (length / max(travel, 1e-6))
    angles = np.linspace(-1.0, 1.0, n_sub) * rng.uniform(-max_angle, max_angle)
    return [(dx, dy, a - angles[n_sub // 2]) for (dx, dy), a in zip(pts, angles)]


def _blurred_frame(cv2, region, path, size):
    """(sharp, blur, blur_gamma) uint8 crops of ``region`` (float sRGB in [0, 1]) for a camera ``path``.

    The sharp frame is the middle sub-frame (no resampling).  ``blur`` averages the sub-frames' pixel values
    (a linear camera response, like GOPRO_Large's blur/); ``blur_gamma`` averages them in linear light through
    a gamma 2.2 response (like GOPRO_Large's blur_gamma/).
    """
    h, w = size
    rh, rw = region.shape[:2]
    top, left = (rh - h) // 2, (rw - w) // 2
    centre = (rw / 2 - 0.5, rh / 2 - 0.5)
    plain, linear = np.zeros_like(region), np.zeros_like(region)
    for dx, dy, angle in path:
        m = cv2.getRotationMatrix2D(centre, angle, 1.0)
        m[:, 2] += (dx, dy)
        sub = np.clip(cv2.warpAffine(region, m, (rw, rh), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101),
                      0.0, 1.0)
        plain += sub
        linear += sub ** 2.2
    crop = lambda a: a[top:top + h, left:left + w]  # noqa: E731
    to8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    return to8(crop(region)), to8(crop(plain / len(path))), to8(crop((linear / len(path)) ** (1 / 2.2)))


def _gopro_sequences():
    photos = dict(photo_sources())
    test = [n for n in GOPRO_LITE_TEST if n in photos]
    train = [n for n in GOPRO_LITE_TRAIN if n in photos]
    if len(test) < 1 or len(train) < 2:
        raise RuntimeError(f"too few scikit-image photographs for the gopro lite data (found {sorted(photos)})")
    return {"train": [(n, photos[n]) for n in train], "test": [(n, photos[n]) for n in test]}


def make_gopro(out_root, seed=0):
    """GoPro-like deblurring pairs in both layouts: ``GOPRO_Large/{train,test}/<SEQ>/{blur,blur_gamma,sharp}``
    and the flat ``GOPRO/{train,test}/{blur,sharp}`` that training reads (hard links into GOPRO_Large where the
    file system allows, else copies).  Replaces both folders atomically."""
    import cv2

    from .gopro import flatten_gopro

    rng = np.random.default_rng(seed)
    h, w = GOPRO_LITE_SIZE
    os.makedirs(out_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".gopro.", dir=out_root)
    try:
        psnrs, n_pairs = [], {}
        for split, sequences in _gopro_sequences().items():
            n_pairs[split] = 0
            for s, (name, photo) in enumerate(sequences):
                seq = f"GOPR{9000 + 10 * s + (split == 'test')}_{11:02d}_00"
                for f in range(GOPRO_LITE_FRAMES[split]):
                    length = rng.uniform(GOPRO_LITE_BLUR[0], GOPRO_LITE_BLUR[1])
                    path = _camera_path(rng, int(rng.integers(9, 16)), length, max_angle=1.5, **GOPRO_LITE_MOTION)
                    margin = int(np.ceil(length + 0.02 * max(h, w))) + 8
                    img = cv2.copyMakeBorder(photo, margin + h, margin + h, margin + w, margin + w,
                                             cv2.BORDER_REFLECT101)
                    # pan across the photograph frame after frame, as a moving camera would (frames stay inside
                    # the photograph where it is large enough; the border is mirrored only for the blur margin)
                    ph, pw = photo.shape[:2]
                    cy = margin + h + h // 2 + int(max(ph - h, 0) * rng.random())
                    cx = margin + w + w // 2 + int(max(pw - w, 0) * (f + 0.5) / GOPRO_LITE_FRAMES[split])
                    y0, x0 = cy - h // 2 - margin, cx - w // 2 - margin
                    region = img[y0:y0 + h + 2 * margin, x0:x0 + w + 2 * margin].astype(np.float32) / 255.0
                    images = dict(zip(("sharp", "blur", "blur_gamma"), _blurred_frame(cv2, region, path, (h, w))))
                    for kind, arr in images.items():
                        write_png(os.path.join(tmp, "GOPRO_Large", split, seq, kind, f"{f + 1:06d}.png"), arr)
                    mse = np.mean((images["blur"].astype(np.float64) - images["sharp"]) ** 2) / 255.0 ** 2
                    psnrs.append(10 * np.log10(1 / mse))
                    n_pairs[split] += 1
        src, dst = os.path.join(tmp, "GOPRO_Large"), os.path.join(tmp, "GOPRO")
        try:
            flatten_gopro(src, dst, link=True, progress=False)
        except Exception:  # no hard links on this file system
            shutil.rmtree(dst, ignore_errors=True)
            flatten_gopro(src, dst, link=False, progress=False)
        for part in ("GOPRO_Large", "GOPRO"):  # swap each complete folder in; the old one goes to tmp
            final = os.path.join(out_root, part)
            if os.path.lexists(final):
                os.replace(final, os.path.join(tmp, f"old_{part}"))
            os.replace(os.path.join(tmp, part), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return (f"{n_pairs['train']} train / {n_pairs['test']} test pairs of {h}x{w} in "
            f"{os.path.join(out_root, 'GOPRO')} (and GOPRO_Large/); blurred input PSNR {np.mean(psnrs):.2f} dB")


LITE_TASKS["gopro"] = make_gopro
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


BSDS_KERNELS = ((7, 0.0), (9, 45.0), (11, 100.0), (13, 150.0))  # (length, angle) of the motion-blur kernels


def make_bsds(out_root, seed=0):
    """``out_root/BSDS300/images/{train,test}/*.jpg``: 12 + 8 clean photographs in the BSDS300 layout, and
    ``BSDS300/kernels.npy``: four 15 x 15 linear motion-blur kernels (a [4, 15, 15] stack) for DMSP deblurring."""
    import cv2

    from utils.dmsp.restore import motion_kernel

    final = os.path.join(out_root, "BSDS300")
    crops = _bsds_crops(seed, BSDS_TRAIN + BSDS_TEST)
    with staged_dir(final) as tmp:
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
        np.save(os.path.join(tmp, "kernels.npy"), np.stack([motion_kernel(n, a, 15) for n, a in BSDS_KERNELS]))
    return (f"{final}: images/train {BSDS_TRAIN}, images/test {BSDS_TEST} (clean JPEGs, BSDS300 layout), "
            f"kernels.npy ({len(BSDS_KERNELS)} motion blurs)")


LITE_TASKS["bsds"] = make_bsds
