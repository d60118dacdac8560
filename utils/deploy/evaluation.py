"""Evaluation protocols on top of the one restoration loop (``restoration.restore_items``), for any runner:
a dygraph checkpoint (``DygraphRunner``) or an exported model (``PaddleRunner``, ``OnnxRunner``).

- SIDD (test_denoising_sidd.py): every validation block of the two official ``.mat`` files, or every pair of
  a paired folder, restored, clamped to [0, 1] and scored without rounding in float64: PSNR, the scikit-image
  Gaussian SSIM and the MATLAB-style volumetric SSIM (``utils.metrics``); the figures are means over blocks.
  Restored blocks can be saved as ``Idenoised.mat`` (float32, the layout of the input file, as the official
  scripts write it) and as PNG images.
- GoPro (test_deblurring_gopro.py): per image, batch 1, the whole image; prediction = the full-resolution
  output (optionally a self-ensemble, ``ensemble.EnsembleRunner``) clamped to [0, 1]; PSNR as scikit-image's
  on the float RGB prediction with data range 1 (the official MIMO-UNet protocol, before any rounding), SSIM
  as scikit-image's Gaussian SSIM.

Both can keep a ``utils.figures.Gallery``: crops of the worst and best images by PSNR (input | output | ground
truth), written as one PNG (``gallery.png``) for a look at what the figures mean.
"""
import json
import os

import numpy as np

from ..errors import UserError
from ..fileio import atomic_path, atomic_write_text
from ..image_io import paired_folder
from .restoration import dataset_items, mean_scores, restore_items, restored_records, unreadable
from .tiling import TilePlan

WHOLE = TilePlan(tile=0)  # the protocols restore whole images
SIDD_METRICS = ("psnr", "ssim", "ssim_matlab")


def sidd_source(mat_dir=None, data_dir=None):
    """The SIDD data set to evaluate: the official ``.mat`` blocks in ``mat_dir``, or the paired folder
    ``data_dir`` (``input/`` + ``groundtruth/``, matched by file name)."""
    if data_dir:
        from dataloaders.paired import PairedImageDataset

        pair = paired_folder(data_dir)
        if not pair:
            raise UserError(f"{data_dir} is not a paired folder (expected input/ and groundtruth/ inside)")
        return PairedImageDataset(data_dir, os.path.basename(pair[0]), os.path.basename(pair[1]))
    from dataloaders.sidd import GT_KEY, NOISY_KEY, SIDDValidationBlocks

    return SIDDValidationBlocks(mat_dir, noisy_key=NOISY_KEY, gt_key=GT_KEY)


def limit_images(dataset, limit):
    """Indices of the first ``limit`` images (for SIDD .mat blocks: of the first ``limit`` images' blocks)."""
    n = len(dataset)
    if limit is not None:
        n = min(n, int(limit) * getattr(dataset, "blocks_per_image", 1))
    return range(n)


def evaluate_sidd(run, dataset, batch_size=1, result_dir=None, save_mat=False, save_images=False, limit=None,
                  progress=True, gallery=None):
    """Restore and score every block of ``dataset``; returns the summary dict (also written as metrics.json).
    ``gallery`` (a ``utils.figures.Gallery``) is offered every block and written as RESULT_DIR/gallery.png."""
    layout = getattr(dataset, "layout", None)
    if save_mat and layout is None:
        raise UserError("Idenoised.mat is written for the .mat protocol only (use --save-images for folders)")
    indices = limit_images(dataset, limit)
    restored = np.zeros(layout, np.float32) if save_mat else None

    items = dataset_items(dataset, indices)
    position = {it.name: i for it, i in zip(items, indices)}

    def keep(rec, inp, out, gt):
        if restored is not None:  # the block's place in the [images, blocks, H, W, 3] layout
            restored[divmod(position[rec["name"]], layout[1])] = np.clip(out, 0.0, 1.0).transpose(1, 2, 0)
        if gallery is not None:
            gallery.add(rec["name"], inp, np.clip(out, 0.0, 1.0), gt, rec["psnr"])

    records = restore_items(run, items, os.path.join(result_dir, "png") if save_images else None, batch_size,
                            WHOLE, progress=progress, metrics=SIDD_METRICS, on_result=keep, desc="SIDD",
                            skip_unreadable=True)
    done = restored_records(records)
    if not done:
        raise UserError(f"no block could be read: {unreadable(records)[0]}")
    means = mean_scores(done, SIDD_METRICS)
    summary = {"blocks": len(done), "psnr": means["psnr"], "ssim_skimage": means["ssim"],
               "ssim_matlab": means["ssim_matlab"]}
    if len(done) < len(records):  # scored without them: said in metrics.json and by the script's exit status
        summary.update(unreadable=unreadable(records), total=len(records))
    if result_dir:
        if restored is not None:
            from scipy import io as sio

            with atomic_path(os.path.join(result_dir, "Idenoised.mat")) as tmp:
                sio.savemat(tmp, {"Idenoised": restored})
        if gallery is not None:
            summary["gallery"] = gallery.write(os.path.join(result_dir, "gallery.png"))
        atomic_write_text(os.path.join(result_dir, "metrics.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def sidd_summary_line(summary):
    return (f"SIDD ({summary['blocks']} blocks, clamped, unrounded): PSNR {summary['psnr']:.4f} dB | "
            f"SSIM (scikit-image, Gaussian, per channel) {summary['ssim_skimage']:.4f} | "
            f"SSIM (MATLAB-style, volumetric) {summary['ssim_matlab']:.4f}")


def evaluate_pairs(run, dataset, save_dir=None, timing=False, limit=None, progress=True, gallery=None):
    """The GoPro protocol on ``dataset`` (``dataset[i]`` = (input, target), ``dataset.names[i]``).

    Returns a dict: ``psnr``, ``ssim``, ``input_psnr`` (of the degraded input), ``seconds`` (mean network time
    per image after one untimed warm-up run, when ``timing``) and ``rows`` (name, psnr, ssim, input_psnr,
    seconds).  Restored images are written to ``save_dir`` as PNG under their input names; ``gallery`` (a
    ``utils.figures.Gallery``) is offered every image (the caller writes it)."""
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n < 1:
        raise UserError("nothing to evaluate: the data set is empty")
    items = dataset_items(dataset, range(n))
    if timing:  # first call: kernel selection and memory set-up, not counted (on the first readable image)
        for it in items:
            try:
                run(it.load()[0][None])
                break
            except UserError:
                continue

    def keep(rec, inp, out, gt):
        if gallery is not None:
            gallery.add(rec["name"], inp, np.clip(out, 0.0, 1.0), gt, rec["psnr"], rec["psnr_input"])

    records = restore_items(run, items, save_dir, 1, WHOLE, progress=progress, on_result=keep, desc="evaluate",
                            skip_unreadable=True)
    done = restored_records(records)
    if not done:
        raise UserError(f"no image could be read: {unreadable(records)[0]}")
    rows = [(r["name"], r["psnr"], r["ssim"], r["psnr_input"], r["seconds"]) for r in done]
    cols = np.array([row[1:] for row in rows], dtype=np.float64)
    return {"psnr": cols[:, 0].mean(), "ssim": cols[:, 1].mean(), "input_psnr": cols[:, 2].mean(),
            "seconds": cols[:, 3].mean() if timing else None, "rows": rows, "unreadable": unreadable(records),
            "total": len(records)}


def results_csv(result):
    lines = ["name,psnr,ssim,input_psnr,seconds"]
    lines += [f"{name},{p:.4f},{s:.6f},{pi:.4f},{t:.4f}" for name, p, s, pi, t in result["rows"]]
    return "\n".join(lines) + "\n"
