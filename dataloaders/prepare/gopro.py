"""Preparation of the official ``GOPRO_Large`` download into the layout the GoPro data sets read.

Prepared layout (what the official MIMO-UNet code reads), one folder per split::

    GOPRO/{train,test}/{blur,sharp}/<SEQUENCE>_<frame>.png

``flatten_gopro`` builds it from ``GOPRO_Large/{train,test}/<SEQUENCE>/{blur,blur_gamma,sharp}/<frame>.png``
by copying or hard-linking; unlike the official script it never moves or changes the originals.
"""
import errno
import os
import shutil

from utils.errors import DatasetError, ImageError
from utils.fileio import output_dir, temporary_name
from utils.image_io import folder_pairs

SPLITS = ("train", "test")

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
                pairs = folder_pairs(bdir, sdir)
            except ImageError as exc:
                problems.append(f"{split}/{seq}: {exc}")
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
    tmp = temporary_name(dst)
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
    output_dir(root_dst, "--root_dst")
    jobs = []
    for split, pairs in plan.items():
        for kind in ("blur", "sharp"):
            output_dir(os.path.join(root_dst, split, kind))
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
