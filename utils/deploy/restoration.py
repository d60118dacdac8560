"""The one restoration loop: any runner, any source of images, optional ground truth, scores and outputs.

Every path that restores and scores images goes through ``restore_items``: validation during training, the
SIDD and GoPro evaluation scripts (on a checkpoint or an exported model), predict.py and infer.py.

An *item* is one image to restore: a name and a loader returning ``(image, ImageInfo, ground truth or None)``
(float32 RGB (3, H, W) in [0, 1]).  Items come from files (``collect_items``), arrays (``array_item``) or a
data set of (input, target) pairs (``dataset_items``).  They are restored in chunks of ``batch_size`` (images
of one size share a forward pass, tiled as a ``TilePlan`` says), written to ``save_dir`` in the input's form
(bit depth, gray, alpha), optionally beside a comparison panel, and scored against their ground truth.

Outputs never replace an input (the loop refuses before writing anything) and every input gets its own output
name (``x.png`` and ``x.jpg`` become ``x.png`` and ``x_jpg.png``).  With ``skip_unreadable`` an image that
cannot be read is recorded with its ``error`` and the others are restored; ``raise_for_unreadable`` then lists
them, one per line, and ends the command with an error.
"""
import dataclasses
import os
import sys
import time

import numpy as np

from ..cli import non_negative_int, positive_int
from ..errors import ImageError, UserError
from ..fileio import check_not_inputs, output_dir
from ..image_io import ImageInfo, list_images, match_ground_truth, paired_folder, read_image, write_image
from ..metrics import psnr, ssim, ssim_matlab
from .tiling import AUTO_TILE_PIXELS, DEFAULT_OVERLAP, DEFAULT_TILE, TilePlan, count_tiles, tiled_run

LOSSY = (".jpg", ".jpeg", ".webp")
DEFAULT_METRICS = ("psnr", "ssim", "psnr_input")


def _ssim(a, b):
    try:
        return ssim(a, b)
    except ValueError:  # smaller than the SSIM window
        return None


METRICS = {  # name -> f(output clamped to [0, 1], ground truth, input)
    "psnr": lambda out, gt, inp: psnr(out, gt),
    "ssim": lambda out, gt, inp: _ssim(out, gt),
    "ssim_matlab": lambda out, gt, inp: ssim_matlab(out, gt),
    "psnr_input": lambda out, gt, inp: psnr(inp, gt),
    "ssim_input": lambda out, gt, inp: _ssim(inp, gt),
}


@dataclasses.dataclass
class Item:
    name: str
    load: object  # () -> (float32 (3, H, W), ImageInfo, float32 (3, H, W) ground truth or None)
    sources: tuple = ()  # the files it is read from (never overwritten)


def file_item(path, gt_path=None):
    def load():
        img, info = read_image(path, with_info=True)
        return img, info, read_image(gt_path) if gt_path else None

    return Item(os.path.basename(path), load, tuple(p for p in (path, gt_path) if p))


def array_item(name, img, gt=None):
    return Item(name, lambda: (img, ImageInfo(), gt))


def dataset_items(dataset, indices=None):
    """Items of a data set whose ``dataset[i]`` is (input, target); names from ``dataset.names`` if it has them,
    the files read from ``dataset.pairs`` (paired folders), which outputs must not replace."""
    names, pairs = getattr(dataset, "names", None), getattr(dataset, "pairs", None)

    def item(i):
        def load():
            inp, target = dataset[i]
            return inp, ImageInfo(), target

        return Item(names[i] if names is not None else f"{i:06d}.png", load, tuple(pairs[i]) if pairs else ())

    return [item(i) for i in (range(len(dataset)) if indices is None else indices)]


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


def output_names(names, suffix=""):
    """A distinct output file name for every input name: ``output_name`` where that is free (inputs that keep
    their own name are served first), else the input's extension added to the stem (``x.jpg`` -> ``x_jpg.png``
    beside the ``x.png`` of ``x.png``), else a number.  Compared without case (case-insensitive file systems)."""
    wanted = [output_name(n, suffix) for n in names]
    own = [wanted[i] == "{0}{2}{1}".format(*os.path.splitext(n), suffix) for i, n in enumerate(names)]
    out, taken = [None] * len(names), set()
    for i in range(len(names)):  # first, every input that keeps its own name where that is free
        if own[i] and wanted[i].lower() not in taken:
            out[i] = wanted[i]
            taken.add(wanted[i].lower())
    for i in (i for i in range(len(names)) if out[i] is None):
        name = wanted[i]
        if name.lower() in taken:
            stem, ext = os.path.splitext(names[i])
            name = output_name(f"{stem}_{ext.lstrip('.').lower()}{ext}" if ext else stem, suffix)
            base, k = os.path.splitext(name), 2
            while name.lower() in taken:
                name, k = f"{base[0]}_{k}{base[1]}", k + 1
        taken.add(name.lower())
        out[i] = name
    return out


def side_by_side(*images, gap=4):
    """Images (3, H, W) of one size placed left to right with a white gap."""
    h = images[0].shape[1]
    sep = np.ones((3, h, gap), dtype=np.float32)
    parts = []
    for img in images:
        parts += [np.clip(img, 0.0, 1.0), sep]
    return np.concatenate(parts[:-1], axis=2)


def restore(run, batch, plan=None, progress=None):
    """Restore a (B, 3, H, W) or (3, H, W) float32 array with ``run``, tiled as ``plan`` (a TilePlan) says."""
    plan = plan or TilePlan()
    single = batch.ndim == 3
    batch = batch[None] if single else batch
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ImageError(f"expected RGB images of shape (3, H, W), got {tuple(batch.shape[1:])}")
    size = plan.size_for(*batch.shape[2:])
    if size:
        out = tiled_run(run, batch, size, plan.overlap, plan.batch, progress)
    else:
        out = np.asarray(run(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
    return out[0] if single else out


class _NoTimer:
    def start(self):
        pass

    def stamp(self):
        pass

    def end(self, stamp=False):
        pass


def _score(out, gt, inp, metrics):
    if gt.shape != out.shape:
        raise ImageError(f"ground truth has size {gt.shape[1:]} but the image has {out.shape[1:]}")
    return {m: METRICS[m](out, gt, inp) for m in metrics}


def restore_items(run, items, save_dir=None, batch_size=1, plan=None, compare=False, suffix="", timer=None,
                  progress=True, metrics=DEFAULT_METRICS, on_result=None, desc="restoring", skip_unreadable=False):
    """Restore ``items`` with ``run``; returns one record per image: name, height, width, seconds (network time
    per image in its chunk), output (the path written, with ``save_dir``) and, with ground truth, the
    ``metrics`` (names of ``METRICS``; SSIM is None on images smaller than its window).

    ``on_result(record, input, output, ground truth)`` receives every image's raw (unclamped) output.  ``timer``
    follows auto_log's interface (start, stamp after pre-processing, stamp after inference, end(stamp=True)).
    ``skip_unreadable``: an item whose loading raises a UserError gets a record with its ``error`` instead (no
    output), and the loop goes on.  Every output path is checked against every input before anything is written.
    """
    from tqdm import tqdm

    timer = timer or _NoTimer()
    plan = plan or TilePlan()
    step = max(int(batch_size), 1)
    names = output_names([it.name for it in items], suffix) if save_dir else [None] * len(items)
    if save_dir:
        outputs = [os.path.join(save_dir, n) for n in names]
        if compare:
            outputs += [os.path.join(save_dir, "compare", n) for n in names]
        check_not_inputs(outputs, [p for it in items for p in it.sources],
                         "choose another output folder (or add a --suffix)")
        output_dir(save_dir)
        if compare:
            output_dir(os.path.join(save_dir, "compare"))
    records = []
    bar = tqdm(total=len(items), desc=desc, unit="img", leave=False, disable=not progress or len(items) < 2)
    try:
        for k in range(0, len(items), step):
            chunk = list(zip(items[k:k + step], names[k:k + step]))
            timer.start()
            loaded = []
            for it, name in chunk:
                try:
                    loaded.append((it, name, *it.load()))
                except UserError as exc:
                    if not skip_unreadable:
                        raise
                    records.append({"name": it.name, "error": " ".join(str(exc).split())})
                    bar.update(1)
            timer.stamp()
            if not loaded:
                timer.end(stamp=True)
                continue
            restored, seconds = [None] * len(loaded), [0.0] * len(loaded)
            for shape in sorted({v[2].shape for v in loaded}):  # images of one size share a forward pass
                idx = [i for i, v in enumerate(loaded) if v[2].shape == shape]
                size = plan.size_for(shape[1], shape[2])
                tiles = tqdm(total=count_tiles(shape[1], shape[2], size, plan.overlap) * len(idx), desc="tiles",
                             leave=False, disable=not progress) if size else None
                try:
                    t0 = time.perf_counter()
                    out = restore(run, np.stack([loaded[i][2] for i in idx]), plan, tiles.update if tiles else None)
                    per_image = (time.perf_counter() - t0) / len(idx)
                finally:
                    if tiles:
                        tiles.close()
                for j, i in enumerate(idx):
                    restored[i], seconds[i] = out[j], per_image
            timer.stamp()
            for (it, name, img, info, gt), out, sec in zip(loaded, restored, seconds):
                rec = {"name": it.name, "height": int(img.shape[1]), "width": int(img.shape[2]), "seconds": sec}
                clipped = np.clip(out, 0.0, 1.0)
                if gt is not None:
                    rec.update(_score(clipped, gt, img, metrics))
                if save_dir:
                    path = os.path.join(save_dir, name)
                    write_image(path, clipped, info)
                    rec["output"] = path
                    if compare:
                        panels = [img, clipped] + ([gt] if gt is not None else [])
                        write_image(os.path.join(save_dir, "compare", name), side_by_side(*panels),
                                    ImageInfo(bit_depth=info.bit_depth))
                if on_result is not None:
                    on_result(rec, img, out, gt)
                records.append(rec)
                bar.update(1)
            timer.end(stamp=True)
    finally:
        bar.close()
    return records


def restored_records(records):
    """The records of the images that were restored (not those that could not be read)."""
    return [r for r in records if "error" not in r]


def unreadable(records):
    """The error messages of the images a ``skip_unreadable`` loop could not read."""
    return [r["error"] for r in records if "error" in r]


def raise_for_unreadable(errors, total, done=""):
    """After a ``skip_unreadable`` loop: list every image that could not be read (``errors``, their messages) on a
    line of its own on stderr, then raise one ImageError saying how many of ``total``; ``done`` says what
    happened to the others.  A single image is reported in that one line."""
    if not errors:
        return
    if total == 1:
        raise ImageError(errors[0])
    from ..cli import clear_progress_bars

    clear_progress_bars()
    for message in errors:
        print(f"unreadable: {message}", file=sys.stderr)
    raise ImageError(f"{len(errors)} of {total} image(s) could not be read (listed above)"
                     + (f"; {done}" if done else ""))


def mean_scores(records, metrics):
    """{metric: mean over the records that have it} (None where no record has it)."""
    out = {}
    for m in metrics:
        values = [r[m] for r in records if r.get(m) is not None]
        out[m] = float(np.mean(values)) if values else None
    return out


def summary_lines(records):
    """Human-readable per-image and mean scores."""
    lines, records = [], restored_records(records)
    scored = [r for r in records if "psnr" in r]
    for r in scored:
        s = f", SSIM {r['ssim']:.4f}" if r.get("ssim") is not None else ""
        lines.append(f"{r['name']}: PSNR {r['psnr']:.2f} dB{s} (input {r['psnr_input']:.2f} dB)")
    if scored:
        means = mean_scores(scored, ("psnr", "ssim"))
        s = f", SSIM (scikit-image) {means['ssim']:.4f}" if means["ssim"] is not None else ""
        lines.append(f"mean over {len(scored)} image(s): PSNR {means['psnr']:.2f} dB{s}")
    if scored and len(scored) < len(records):
        lines.append(f"{len(records) - len(scored)} image(s) without ground truth were restored but not scored")
    return lines


# ---------------------------------------------------------------------------------------------- arguments
def tile_arg(v):
    return v if v == "auto" else non_negative_int(v)


def add_tile_arguments(parser):
    parser.add_argument("--tile", type=tile_arg, default="auto",
                        help="tile size for large images: 0 = never tile, auto = tile 512 only above 1 Mpixel "
                             "(default: %(default)s)")
    parser.add_argument("--tile-overlap", "--tile_overlap", type=non_negative_int, default=None,
                        help=f"overlap between tiles in pixels (default: {DEFAULT_OVERLAP} or the model's)")
    parser.add_argument("--tile-batch", "--tile_batch", type=positive_int, default=1, help="tiles per forward pass")
    return parser


def tile_plan(args, multiple=1, meta=None):
    """TilePlan from the tile arguments and, for exported models, the defaults recorded in their metadata."""
    defaults = (meta or {}).get("tile") or {}
    overlap = args.tile_overlap if args.tile_overlap is not None else defaults.get("overlap", DEFAULT_OVERLAP)
    plan = TilePlan(tile=args.tile, overlap=int(overlap), multiple=int(multiple), batch=args.tile_batch,
                    auto_size=int(defaults.get("size", DEFAULT_TILE)),
                    auto_pixels=int(defaults.get("auto_above_pixels", AUTO_TILE_PIXELS)))
    try:
        plan.size_for(1 << 30, 1 << 30)  # validates tile and overlap once, before any work
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return plan


def default_image(size=256, sigma=15.0, seed=0):
    """(noisy, clean) float32 (3, size, size) images: a crop of scikit-image's astronaut photograph with seeded
    Gaussian noise of ``sigma`` (8-bit levels), quantised to 8 bits like a file would be.  Needs no download."""
    from skimage import data

    photo = np.asarray(data.astronaut())  # 512 x 512 x 3 uint8, bundled with scikit-image
    size = min(int(size), 512)
    top, left = min(30, 512 - size), min(150, 512 - size)  # face and helmet: texture and flat regions
    clean = photo[top:top + size, left:left + size].astype(np.float32) / 255.0
    noise = np.random.RandomState(seed).normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)
    noisy = np.round(np.clip(clean + noise, 0.0, 1.0) * 255.0) / 255.0
    return (np.ascontiguousarray(noisy.transpose(2, 0, 1), dtype=np.float32),
            np.ascontiguousarray(clean.transpose(2, 0, 1)))


def save_reprod_log(path, outputs, records=()):
    """Write raw outputs (name -> array) and PSNRs with reprod_log, atomically; returns the path written."""
    from reprod_log import ReprodLogger

    from ..fileio import atomic_path

    log = ReprodLogger()
    for name, arr in outputs.items():
        log.add(name, np.asarray(arr, dtype=np.float32))
    for rec in records:
        if "psnr" in rec:
            log.add(f"psnr/{rec['name']}", np.array([rec["psnr"]], dtype=np.float64))
    path = path if str(path).endswith(".npy") else f"{path}.npy"  # np.save would add it
    with atomic_path(path) as tmp:
        log.save(tmp)
    return path
