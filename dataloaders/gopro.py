"""GoPro deblurring data: the paired datasets, and the preparation of the official ``GOPRO_Large`` download.

Prepared layout (what the official MIMO-UNet code reads), one folder per split::

    GOPRO/{train,test}/{blur,sharp}/<SEQUENCE>_<frame>.png

``flatten_gopro`` builds it from ``GOPRO_Large/{train,test}/<SEQUENCE>/{blur,blur_gamma,sharp}/<frame>.png``
by copying or hard-linking; unlike the official script it never moves or changes the originals.
"""
import errno
import os
import shutil

import numpy as np

from utils.image_io import ImageError, is_image_file, read_image

from . import DatasetError, register_dataset

SPLITS = ("train", "test")


def _images(folder):
    return sorted(f for f in os.listdir(folder) if is_image_file(f) and not f.startswith("."))


def match_pairs(input_folder, target_folder, where=None):
    """Sorted (input_path, target_path) pairs of equally named images, or DatasetError naming the problem."""
    where = where or os.path.dirname(os.path.abspath(input_folder))
    for folder in (input_folder, target_folder):
        if not os.path.isdir(folder):
            raise DatasetError(f"folder not found: {folder}")
    inputs, targets = _images(input_folder), _images(target_folder)
    lonely = sorted(set(inputs) ^ set(targets))
    if lonely:
        side = os.path.basename(target_folder if lonely[0] in inputs else input_folder)
        raise DatasetError(f"{where}: {len(lonely)} image(s) without a partner, e.g. {lonely[0]} has none in "
                           f"{side}/")
    if not inputs:
        raise DatasetError(f"no images in {input_folder}")
    return [(os.path.join(input_folder, f), os.path.join(target_folder, f)) for f in inputs]


class _PairedFolders:
    """Equally named images in ``root/input_dir`` and ``root/target_dir``."""

    def __init__(self, root, input_dir, target_dir):
        if not os.path.isdir(root):
            raise DatasetError(f"data folder not found: {root} (GoPro: run prepare_GoPro.py; lite data: "
                               "tools/make_lite_data.py --task gopro)")
        self.root = root
        self.pairs = match_pairs(os.path.join(root, input_dir), os.path.join(root, target_dir), root)
        self.names = [os.path.basename(p) for p, _ in self.pairs]

    def __len__(self):
        return len(self.pairs)

    def _read_pair(self, idx):
        paths = self.pairs[idx]
        try:
            inp, tgt = read_image(paths[0]), read_image(paths[1])
        except ImageError as exc:
            raise DatasetError(str(exc)) from None
        if inp.shape != tgt.shape:
            raise DatasetError(f"{self.names[idx]}: input {inp.shape[1]}x{inp.shape[2]} and target "
                               f"{tgt.shape[1]}x{tgt.shape[2]} differ in size")
        return inp, tgt


@register_dataset
class GoProDataset(_PairedFolders):
    """Training pairs: paired random crop (``patch_size``), random horizontal flip, and optionally one random
    permutation of the colour channels applied to both images (``rgb_shuffle``, PairRandomRGBShuffle)."""

    def __init__(self, root, patch_size=256, hflip=True, rgb_shuffle=False, input_dir="blur", target_dir="sharp"):
        super().__init__(root, input_dir, target_dir)
        self.hflip, self.rgb_shuffle = bool(hflip), bool(rgb_shuffle)
        self.set_patch_size(patch_size)

    def set_patch_size(self, size):
        if int(size) != size or size < 1:
            raise DatasetError(f"patch_size must be a positive integer, got {size!r}")
        self.patch_size = int(size)

    def __getitem__(self, idx):
        inp, tgt = self._read_pair(idx)
        ps, (h, w) = self.patch_size, inp.shape[1:]
        if h < ps or w < ps:
            raise DatasetError(f"{self.names[idx]} is {h}x{w}, smaller than patch_size {ps}")
        top, left = np.random.randint(0, h - ps + 1), np.random.randint(0, w - ps + 1)
        inp, tgt = inp[:, top:top + ps, left:left + ps], tgt[:, top:top + ps, left:left + ps]
        if self.hflip and np.random.rand() < 0.5:
            inp, tgt = inp[:, :, ::-1], tgt[:, :, ::-1]
        if self.rgb_shuffle:
            order = np.random.permutation(3)
            inp, tgt = inp[order], tgt[order]
        return np.ascontiguousarray(inp), np.ascontiguousarray(tgt)


@register_dataset
class GoProTestDataset(_PairedFolders):
    """Whole-image pairs in file-name order, for validation and the test protocol; ``names[i]`` is the file.

    ``every`` keeps every N-th pair only (the first, the N+1-th, ...): a quicker validation during training
    that still samples every sequence (GoPro test: 1,111 images; ``every: 10`` keeps 112)."""

    def __init__(self, root, input_dir="blur", target_dir="sharp", every=1):
        super().__init__(root, input_dir, target_dir)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise DatasetError(f"every must be a positive integer, got {every!r}")
        self.pairs, self.names = self.pairs[::every], self.names[::every]

    def __getitem__(self, idx):
        return self._read_pair(idx)


# ------------------------------------------------------------------ preparation of GOPRO_Large
def scan_gopro_large(root_src, blur_dir="blur", splits=SPLITS):
    """``{split: [(blur_path, sharp_path, flat_name), ...]}`` of a GOPRO_Large tree; DatasetError listing up to
    five problems (missing folders, unpaired frames, empty splits) when it is not one."""
    if not os.path.isdir(root_src):
        raise DatasetError(f"source folder not found: {root_src}")
    plan, problems = {}, []
    for split in splits:
        split_dir = os.path.join(root_src, split)
        if not os.path.isdir(split_dir):
            problems.append(f"no {split}/ folder")
            continue
        plan[split] = []
        for seq in sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d))):
            bdir, sdir = os.path.join(split_dir, seq, blur_dir), os.path.join(split_dir, seq, "sharp")
            missing = [d for d in (bdir, sdir) if not os.path.isdir(d)]
            if missing:
                problems.append(f"{split}/{seq} has no {os.path.basename(missing[0])}/ folder")
                continue
            try:
                pairs = match_pairs(bdir, sdir, f"{split}/{seq}")
            except DatasetError as exc:
                problems.append(str(exc))
                continue
            plan[split] += [(b, s, f"{seq}_{os.path.basename(b)}") for b, s in pairs]
        if not plan[split] and not any(p.startswith(f"{split}/") for p in problems):
            problems.append(f"{split}/ holds no <sequence>/{blur_dir}/ and sharp/ folders")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DatasetError(f"{root_src} is not a GOPRO_Large tree: {'; '.join(problems[:5])}{more}")
    return plan


def _same_file(src, dst, link):
    if os.path.samefile(src, dst):
        return link  # a copy is wanted: replace a hard link left by an earlier --link run
    if link:
        return False
    a, b = os.stat(src), os.stat(dst)
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)


def _place(src, dst, link):
    """Hard-link or copy ``src`` to ``dst`` through a temporary name, so ``dst`` is never half written."""
    tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.tmp")
    try:
        if link:
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.link(src, tmp)
        else:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        if os.path.lexists(tmp):
            os.remove(tmp)
        if link and exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise DatasetError(f"cannot hard-link {src} into {os.path.dirname(dst)} ({exc.strerror}); "
                               "source and destination must be on one file system: drop --link to copy") from None
        raise


def flatten_gopro(root_src, root_dst, blur_dir="blur", link=False, splits=SPLITS, progress=True):
    """Copy (or hard-link) GOPRO_Large into the flat GOPRO layout; returns {split: pairs, 'skipped': n}.

    ``blur_dir`` is the source folder of blurred frames (``blur`` or ``blur_gamma``); they are written to
    ``blur/`` either way.  Files already in place (same file, or a copy of equal size and time) are skipped,
    so an interrupted run resumes.  The source tree is only read.
    """
    from tqdm import tqdm

    src_real, dst_real = os.path.realpath(root_src), os.path.realpath(root_dst)
    if dst_real == src_real or dst_real.startswith(src_real + os.sep):
        raise DatasetError(f"the destination {root_dst} must lie outside the source tree {root_src}")
    plan = scan_gopro_large(root_src, blur_dir, splits)
    jobs = []
    for split, pairs in plan.items():
        for kind in ("blur", "sharp"):
            os.makedirs(os.path.join(root_dst, split, kind), exist_ok=True)
        for b, s, name in pairs:
            jobs += [(b, os.path.join(root_dst, split, "blur", name)),
                     (s, os.path.join(root_dst, split, "sharp", name))]
    skipped = 0
    for src, dst in tqdm(jobs, desc="link" if link else "copy", unit="file", disable=not progress):
        if os.path.exists(dst) and _same_file(src, dst, link):
            skipped += 1
            continue
        _place(src, dst, link)
    return {**{split: len(pairs) for split, pairs in plan.items()}, "skipped": skipped}
