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


# ------------------------------------------------------------------ gopro: GoPro-like motion blur
# Sequences (one photograph each, several frames panning across it); train and test use different photos
# (chelsea and cat are the same picture, so only one of them is used).
GOPRO_LITE_TEST = ("coffee", "chelsea")
GOPRO_LITE_TRAIN = ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")
GOPRO_LITE_FRAMES = {"train": 3, "test": 4}
GOPRO_LITE_SIZE = (256, 320)  # H, W of every frame


def _camera_path(rng, n_sub, length, max_angle):
    """Sub-frame camera poses (dx, dy, degrees) along a random smooth trajectory, centred on the middle one.

    A velocity with inertia and random acceleration (a shaky hand-held pan), scaled to ``length`` pixels of
    travel, plus a slow roll of up to ``max_angle`` degrees.
    """
    heading = rng.uniform(0, 2 * np.pi)
    vel = np.array([np.cos(heading), np.sin(heading)])
    pts = [np.zeros(2)]
    for _ in range(n_sub - 1):
        vel = 0.8 * vel + rng.normal(0, 0.45, 2)
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
    import os
    import shutil
    import tempfile

    import cv2

    from dataloaders.gopro import flatten_gopro

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
                    length = rng.uniform(8, 28)
                    path = _camera_path(rng, int(rng.integers(9, 16)), length, max_angle=1.5)
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
                        folder = os.path.join(tmp, "GOPRO_Large", split, seq, kind)
                        os.makedirs(folder, exist_ok=True)
                        cv2.imwrite(os.path.join(folder, f"{f + 1:06d}.png"), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
                    mse = np.mean((images["blur"].astype(np.float64) - images["sharp"]) ** 2) / 255.0 ** 2
                    psnrs.append(10 * np.log10(1 / mse))
                    n_pairs[split] += 1
        src, dst = os.path.join(tmp, "GOPRO_Large"), os.path.join(tmp, "GOPRO")
        try:
            flatten_gopro(src, dst, link=True, progress=False)
        except Exception:  # no hard links on this file system
            shutil.rmtree(dst, ignore_errors=True)
            flatten_gopro(src, dst, link=False, progress=False)
        for part in ("GOPRO_Large", "GOPRO"):
            final = os.path.join(out_root, part)
            if os.path.lexists(final):
                shutil.rmtree(final)
            os.replace(os.path.join(tmp, part), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return (f"{n_pairs['train']} train / {n_pairs['test']} test pairs of {h}x{w} in "
            f"{os.path.join(out_root, 'GOPRO')} (and GOPRO_Large/); blurred input PSNR {np.mean(psnrs):.2f} dB")


LITE_TASKS["gopro"] = make_gopro
