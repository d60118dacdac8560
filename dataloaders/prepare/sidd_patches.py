"""Patch extraction from SIDD-Medium sRGB (generate_patches_SIDD.py).

SIDD-Medium sRGB holds one folder per scene with ``GT_SRGB_010.PNG`` / ``NOISY_SRGB_010.PNG`` and the
``_011`` pair.  ``generate_patches`` cuts every pair into training patches, either ``num_patches`` random
crops (``mode='random'``) or the official grid of 512 x 512 crops overlapping by 128 (``mode='grid'``).
Patch ``k`` of scene ``S``, pair ``010`` is written as ``DST/input/S_010_k.png`` and
``DST/groundtruth/S_010_k.png``.  Crops depend only on the seed and the pair's name, so a re-run (any number
of workers) writes the same files under the same names; unreadable or mismatched pairs are reported and
skipped.
"""
import json
import os
import re
import zlib

import numpy as np

from utils.errors import DatasetError
from utils.fileio import atomic_write_bytes, atomic_write_text, check_separate_trees, output_dir

_PAIR_FILE = re.compile(r"^(GT|NOISY)_SRGB_(\d+)\.png$", re.IGNORECASE)
MANIFEST = "patches.json"


def find_pairs(src):
    """Scan SIDD-Medium (``src`` may be the folder holding ``Data`` or ``Data`` itself).

    Returns ``(pairs, problems)``: pairs are ``(name, noisy_path, gt_path)`` sorted by name, problems are
    ``(path, reason)`` for images without their partner."""
    base = os.path.join(src, "Data") if os.path.isdir(os.path.join(src, "Data")) else src
    if not os.path.isdir(base):
        raise DatasetError(f"SIDD folder not found: {src}")
    pairs, problems = [], []
    for scene in sorted(os.listdir(base)):
        folder = os.path.join(base, scene)
        if not os.path.isdir(folder):
            continue
        found = {}
        for f in os.listdir(folder):
            m = _PAIR_FILE.match(f)
            if m:
                found.setdefault(m.group(2), {})[m.group(1).upper()] = os.path.join(folder, f)
        for take, files in sorted(found.items()):
            if len(files) == 2:
                pairs.append((f"{scene}_{take}", files["NOISY"], files["GT"]))
            else:
                (kind, path), = files.items()
                other = "GT" if kind == "NOISY" else "NOISY"
                problems.append((path, f"no matching {other}_SRGB_{take} image"))
    if not pairs and not problems:
        raise DatasetError(f"no scene folders with GT_SRGB_*/NOISY_SRGB_* images under {base}")
    return pairs, problems


def grid_positions(length, ps, overlap):
    """Window starts of the official script: every ps - overlap pixels, plus one flush with the end."""
    return sorted(set(range(0, length - ps, ps - overlap)) | {length - ps})


def crop_windows(shape, settings, name):
    """(y, x) of every patch of an image of ``shape`` (H, W, ...)."""
    h, w = shape[:2]
    ps = settings["ps"]
    if settings["mode"] == "grid":
        return [(y, x) for y in grid_positions(h, ps, settings["overlap"])
                for x in grid_positions(w, ps, settings["overlap"])]
    rng = np.random.default_rng([settings["seed"], zlib.crc32(name.encode())])
    ys = rng.integers(0, h - ps + 1, settings["num_patches"])
    xs = rng.integers(0, w - ps + 1, settings["num_patches"])
    return list(zip(ys.tolist(), xs.tolist()))


def _encode(img):
    import cv2

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def patch_pair(job):
    """Cut one pair into patches; returns ``(name, patches written, problem or None)``.  Never raises for bad
    data, so one broken pair does not stop a multi-process run."""
    import cv2

    name, noisy_path, gt_path, settings, dst = job
    noisy, gt = cv2.imread(noisy_path, cv2.IMREAD_COLOR), cv2.imread(gt_path, cv2.IMREAD_COLOR)
    for img, path in ((noisy, noisy_path), (gt, gt_path)):
        if img is None:
            return name, 0, (path, "unreadable image (corrupt or not an image)")
    if noisy.shape != gt.shape:
        return name, 0, (noisy_path, f"size {noisy.shape[1]}x{noisy.shape[0]} differs from its GT "
                                     f"({gt.shape[1]}x{gt.shape[0]})")
    ps = settings["ps"]
    if min(noisy.shape[:2]) < ps:
        return name, 0, (noisy_path, f"smaller than the patch size {ps}")
    windows = crop_windows(noisy.shape, settings, name)
    for k, (y, x) in enumerate(windows):
        fname = f"{name}_{k:04d}.png"
        atomic_write_bytes(os.path.join(dst, "groundtruth", fname), _encode(gt[y:y + ps, x:x + ps]))
        atomic_write_bytes(os.path.join(dst, "input", fname), _encode(noisy[y:y + ps, x:x + ps]))
    return name, len(windows), None


def _check_destination(dst, settings, overwrite):
    """Refuse to mix patches made with other settings into ``dst``; ``overwrite`` clears it first."""
    manifest = os.path.join(dst, MANIFEST)
    old = None
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            old = json.load(f)
    existing = [os.path.join(dst, sub, f) for sub in ("input", "groundtruth") if os.path.isdir(os.path.join(dst, sub))
                for f in os.listdir(os.path.join(dst, sub)) if f.endswith(".png")]
    if existing and old != settings and not overwrite:
        what = f"patches made with other settings ({old})" if old else "images not made by this script"
        raise DatasetError(f"{dst} already holds {what}; choose another --dst or pass --overwrite to replace them")
    if overwrite:
        for path in existing:
            os.remove(path)
    atomic_write_text(manifest, json.dumps(settings, sort_keys=True) + "\n")


def generate_patches(src, dst, mode="random", ps=256, num_patches=300, overlap=128, seed=0, num_workers=1,
                     overwrite=False, progress=True):
    """Cut SIDD-Medium pairs into ``dst/{input,groundtruth}``.  Returns ``(written, pairs_used, problems)``
    with problems a sorted list of ``(path, reason)`` for every skipped image."""
    if mode not in ("random", "grid"):
        raise DatasetError(f"mode must be 'random' or 'grid', got {mode!r}")
    if ps < 1 or (mode == "grid" and not 0 <= overlap < ps) or (mode == "random" and num_patches < 1):
        raise DatasetError(f"bad patch settings: ps={ps}, overlap={overlap}, num_patches={num_patches}")
    settings = {"mode": mode, "ps": int(ps), "seed": int(seed)}
    settings.update({"overlap": int(overlap)} if mode == "grid" else {"num_patches": int(num_patches)})
    pairs, problems = find_pairs(src)
    check_separate_trees(src, dst, "--src", "--dst")
    for folder in (dst, os.path.join(dst, "input"), os.path.join(dst, "groundtruth")):
        output_dir(folder, "--dst")
    _check_destination(dst, settings, overwrite)
    jobs = [(name, noisy, gt, settings, dst) for name, noisy, gt in pairs]
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="pair", desc="patches", disable=not progress)
    written, used = 0, 0
    if num_workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(min(num_workers, len(jobs))) as pool:
            results = pool.imap_unordered(patch_pair, jobs)
            for _, count, problem in results:
                written, used = written + count, used + (problem is None)
                problems += [problem] if problem else []
                bar.update()
    else:
        for job in jobs:
            _, count, problem = patch_pair(job)
            written, used = written + count, used + (problem is None)
            problems += [problem] if problem else []
            bar.update()
    bar.close()
    return written, used, sorted(problems)
