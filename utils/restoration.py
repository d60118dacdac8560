"""The image loop shared by predict.py and infer.py: inputs, ground truth, batching, outputs, scores.

An *item* is one image to restore: a name, a loader returning ``(image, ImageInfo)`` and optionally a loader of
its ground truth.  Items are restored in chunks of ``batch_size`` (images of equal size share one forward
pass), written next to each other in ``save_dir`` in the input's form (bit depth, gray, alpha), optionally with
a side-by-side comparison, and scored against ground truth when there is one.
"""
import dataclasses
import os

import numpy as np

from .cli import UserError
from .image_io import ImageError, ImageInfo, is_image_file, list_images, read_image, write_image
from .inference import restore
from .metrics import psnr, ssim
from .tiling import TilePlan, count_tiles

LOSSY = (".jpg", ".jpeg", ".webp")
PAIRED_LAYOUTS = (("input", "groundtruth"), ("input", "target"), ("noisy", "clean"), ("blur", "sharp"))


@dataclasses.dataclass
class Item:
    name: str
    load: object            # () -> (float32 (3, H, W), ImageInfo)
    load_gt: object = None  # () -> float32 (3, H, W), or None


def file_item(path, gt_path=None):
    return Item(os.path.basename(path), lambda: read_image(path, with_info=True),
                (lambda: read_image(gt_path)) if gt_path else None)


def array_item(name, img, gt=None):
    return Item(name, lambda: (img, ImageInfo()), (lambda: gt) if gt is not None else None)


def paired_folder(path):
    """(input folder, ground-truth folder) when ``path`` is a folder in a paired layout, else None."""
    if os.path.isdir(path):
        for inp, gt in PAIRED_LAYOUTS:
            if os.path.isdir(os.path.join(path, inp)) and os.path.isdir(os.path.join(path, gt)):
                return os.path.join(path, inp), os.path.join(path, gt)
    return None


def match_ground_truth(files, gt):
    """Ground-truth path for each input: ``gt`` itself for a single input file, else the file of the same name
    (or the same stem with another image extension) in folder ``gt``.  Unmatched inputs get None."""
    if gt is None:
        return [None] * len(files)
    if os.path.isfile(gt):
        if len(files) != 1:
            raise UserError(f"ground truth {gt} is one file but there are {len(files)} inputs; pass a folder")
        return [gt]
    if not os.path.isdir(gt):
        raise UserError(f"ground truth not found: {gt}")
    by_stem = {}
    for f in sorted(os.listdir(gt)):
        if is_image_file(f):
            by_stem.setdefault(os.path.splitext(f)[0], os.path.join(gt, f))
    out = []
    for f in files:
        base = os.path.basename(f)
        same = os.path.join(gt, base)
        out.append(same if os.path.isfile(same) else by_stem.get(os.path.splitext(base)[0]))
    if not any(out):
        raise UserError(f"no ground truth in {gt} matches the input names (e.g. {os.path.basename(files[0])})")
    return out


def collect_items(inputs, gt=None):
    """Items for a file, folder, glob or paired folder (input/ + groundtruth/ ...) with optional ground truth."""
    pair = paired_folder(inputs) if gt is None else None
    if pair:
        inputs, gt = pair
    files = list_images(inputs)
    return [file_item(f, g) for f, g in zip(files, match_ground_truth(files, gt))]


def output_name(name, suffix=""):
    stem, ext = os.path.splitext(name)
    ext = ".png" if ext.lower() in LOSSY or not ext else ext
    return f"{stem}{suffix}{ext}"


def side_by_side(*images, gap=4):
    """Images (3, H, W) of one size placed left to right with a white gap."""
    h = images[0].shape[1]
    sep = np.ones((3, h, gap), dtype=np.float32)
    parts = []
    for img in images:
        parts += [np.clip(img, 0.0, 1.0), sep]
    return np.concatenate(parts[:-1], axis=2)


class _NoTimer:
    def start(self):
        pass

    def stamp(self):
        pass

    def end(self, stamp=False):
        pass


def _score(out, gt, inp):
    if gt.shape != out.shape:
        raise ImageError(f"ground truth has size {gt.shape[1:]} but the image has {out.shape[1:]}")
    rec = {"psnr": psnr(out, gt), "psnr_input": psnr(np.clip(inp, 0, 1), gt)}
    try:
        rec["ssim"] = ssim(out, gt)
    except ValueError:  # smaller than the SSIM window
        rec["ssim"] = None
    return rec


def restore_items(run, items, save_dir=None, batch_size=1, plan=None, compare=False, suffix="", timer=None,
                  keep_outputs=False, progress=True):
    """Restore ``items`` with ``run``; returns (records, outputs).

    ``records`` holds one dict per image (name, size, output path, psnr / ssim / psnr_input with ground truth);
    ``outputs`` maps names to the raw restored arrays when ``keep_outputs``.  ``timer`` follows auto_log's
    interface (start, stamp after pre-processing, stamp after inference, end(stamp=True)).
    """
    from tqdm import tqdm

    timer = timer or _NoTimer()
    plan = plan or TilePlan()
    records, outputs = [], {}
    bar = tqdm(total=len(items), desc="restoring", unit="img", disable=not progress or len(items) < 2)
    for k in range(0, len(items), max(int(batch_size), 1)):
        chunk = items[k:k + max(int(batch_size), 1)]
        timer.start()
        loaded = [(it, *it.load()) for it in chunk]
        timer.stamp()
        restored = [None] * len(loaded)
        shapes = sorted({img.shape for _, img, _ in loaded})
        for shape in shapes:  # images of one size share a forward pass
            idx = [i for i, (_, img, _) in enumerate(loaded) if img.shape == shape]
            batch = np.stack([loaded[i][1] for i in idx])
            size = plan.size_for(shape[1], shape[2])
            tiles = tqdm(total=count_tiles(shape[1], shape[2], size, plan.overlap) * len(idx), desc="tiles",
                         leave=False, disable=not progress) if size else None
            out = restore(run, batch, plan, tiles.update if tiles else None)
            if tiles:
                tiles.close()
            for j, i in enumerate(idx):
                restored[i] = out[j]
        timer.stamp()
        for (it, img, info), out in zip(loaded, restored):
            rec = {"name": it.name, "height": int(img.shape[1]), "width": int(img.shape[2])}
            clipped = np.clip(out, 0.0, 1.0)
            gt = it.load_gt() if it.load_gt else None
            if gt is not None:
                rec.update(_score(clipped, gt, img))
            if save_dir:
                path = os.path.join(save_dir, output_name(it.name, suffix))
                write_image(path, clipped, info)
                rec["output"] = path
                if compare:
                    panels = [img, clipped] + ([gt] if gt is not None else [])
                    write_image(os.path.join(save_dir, "compare", output_name(it.name)), side_by_side(*panels),
                                ImageInfo(bit_depth=info.bit_depth))
            if keep_outputs:
                outputs[it.name] = out
            records.append(rec)
            bar.update(1)
        timer.end(stamp=True)
    bar.close()
    return records, outputs


def summary_lines(records):
    """Human-readable per-image and mean scores."""
    lines = []
    scored = [r for r in records if "psnr" in r]
    for r in records:
        if "psnr" in r:
            s = f", SSIM {r['ssim']:.4f}" if r.get("ssim") is not None else ""
            lines.append(f"{r['name']}: PSNR {r['psnr']:.2f} dB{s} (input {r['psnr_input']:.2f} dB)")
    if scored:
        ss = [r["ssim"] for r in scored if r.get("ssim") is not None]
        s = f", SSIM (scikit-image) {np.mean(ss):.4f}" if ss else ""
        lines.append(f"mean over {len(scored)} image(s): PSNR {np.mean([r['psnr'] for r in scored]):.2f} dB{s}")
    if scored and len(scored) < len(records):
        lines.append(f"{len(records) - len(scored)} image(s) without ground truth were restored but not scored")
    return lines
