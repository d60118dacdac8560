"""SIDD evaluation protocol: restore every validation block, clamp to [0, 1], score without rounding.

Sources: the two official files ``ValidationNoisyBlocksSrgb.mat`` / ``ValidationGtBlocksSrgb.mat`` (uint8
arrays of shape [images, blocks, H, W, 3]: 40 x 32 x 256 x 256 x 3 for SIDD), or a paired folder
(``input/`` + ``groundtruth/``, matched by file name).  Each block is scored in float64 with PSNR, the
scikit-image Gaussian SSIM and the MATLAB-style volumetric SSIM (``utils.metrics``); the reported figures are
means over blocks.  Restored blocks can be saved as ``Idenoised.mat`` (float32, the layout of the input file,
as the official scripts write it) and as PNG images.
"""
import json
import os

import numpy as np

from .cli import UserError
from .fileio import atomic_path, atomic_write_text
from .image_io import list_images, read_image, write_image
from .metrics import psnr, ssim, ssim_matlab

MAT_FILES = (("ValidationNoisyBlocksSrgb.mat", "ValidationNoisyBlocksSrgb"),
             ("ValidationGtBlocksSrgb.mat", "ValidationGtBlocksSrgb"))


def _load_mat(path, key):
    from scipy import io as sio

    if not os.path.isfile(path):
        raise UserError(f"SIDD file not found: {path} (download ValidationNoisyBlocksSrgb.mat and "
                        "ValidationGtBlocksSrgb.mat from the SIDD benchmark page)")
    try:
        data = sio.loadmat(path)
    except NotImplementedError:
        raise UserError(f"{path} is a MATLAB v7.3 (HDF5) file; save it as -v7 or use the official file") from None
    except Exception as exc:
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
    if key not in data:
        raise UserError(f"{path} has no variable {key!r} (found: {', '.join(k for k in data if k[0] != '_')})")
    arr = np.asarray(data[key])
    if arr.ndim != 5 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise UserError(f"{path}: {key} must be uint8 [images, blocks, H, W, 3], got {arr.dtype} {list(arr.shape)}")
    return arr


class MatBlocks:
    """Blocks of the two SIDD .mat files; items are ((image, block), noisy, clean) with (3, H, W) float32."""

    def __init__(self, mat_dir, limit=None):
        self.noisy = _load_mat(os.path.join(mat_dir, MAT_FILES[0][0]), MAT_FILES[0][1])
        self.clean = _load_mat(os.path.join(mat_dir, MAT_FILES[1][0]), MAT_FILES[1][1])
        if self.noisy.shape != self.clean.shape:
            raise UserError(f"noisy and ground-truth blocks differ in shape: {list(self.noisy.shape)} vs "
                            f"{list(self.clean.shape)}")
        n_img = self.noisy.shape[0] if limit is None else min(int(limit), self.noisy.shape[0])
        self.keys = [(i, k) for i in range(n_img) for k in range(self.noisy.shape[1])]

    def __len__(self):
        return len(self.keys)

    def load(self, key):
        i, k = key
        f = lambda a: np.ascontiguousarray(a[i, k].transpose(2, 0, 1), dtype=np.float32) / np.float32(255)  # noqa
        return f(self.noisy), f(self.clean)

    @staticmethod
    def name(key):
        return f"{key[0] + 1:04d}_{key[1] + 1:02d}.png"


class FolderPairs:
    """Paired images: ``input/`` and ``groundtruth/`` in ``data_dir`` matched by file name."""

    def __init__(self, data_dir, limit=None):
        from .restoration import match_ground_truth, paired_folder

        pair = paired_folder(data_dir)
        if not pair:
            raise UserError(f"{data_dir} is not a paired folder (expected input/ and groundtruth/ inside)")
        files = list_images(pair[0])[:limit]
        gts = match_ground_truth(files, pair[1])
        missing = [os.path.basename(f) for f, g in zip(files, gts) if g is None]
        if missing:
            raise UserError(f"no ground truth for {len(missing)} input(s) in {pair[1]}, e.g. {missing[0]}")
        self.keys = list(zip(files, gts))

    def __len__(self):
        return len(self.keys)

    def load(self, key):
        return read_image(key[0]), read_image(key[1])

    @staticmethod
    def name(key):
        return os.path.splitext(os.path.basename(key[0]))[0] + ".png"


def evaluate(run, source, batch_size=1, result_dir=None, save_mat=False, save_images=False, progress=True):
    """Restore and score every block of ``source``; returns the summary dict (also written as metrics.json)."""
    from tqdm import tqdm

    scores = {"psnr": [], "ssim_skimage": [], "ssim_matlab": []}
    if save_mat and not isinstance(source, MatBlocks):
        raise UserError("Idenoised.mat is written for the .mat protocol only (use --save-images for folders)")
    restored = np.zeros(source.noisy.shape, np.float32) if save_mat else None
    step = max(int(batch_size), 1)
    with tqdm(total=len(source), desc="SIDD", unit="block", disable=not progress) as bar:
        for s in range(0, len(source), step):
            keys = source.keys[s:s + step]
            pairs = [source.load(k) for k in keys]
            for shape in sorted({p[0].shape for p in pairs}):
                idx = [j for j, p in enumerate(pairs) if p[0].shape == shape]
                out = np.clip(run(np.stack([pairs[j][0] for j in idx])), 0.0, 1.0)
                for o, j in zip(out, idx):
                    clean = pairs[j][1]
                    scores["psnr"].append(psnr(o, clean))
                    scores["ssim_skimage"].append(ssim(o, clean))
                    scores["ssim_matlab"].append(ssim_matlab(o, clean))
                    if restored is not None:
                        restored[keys[j]] = o.transpose(1, 2, 0)
                    if save_images:
                        write_image(os.path.join(result_dir, "png", source.name(keys[j])), o)
            bar.update(len(keys))
    summary = {"blocks": len(source), **{k: float(np.mean(v)) for k, v in scores.items()}}
    if result_dir:
        if restored is not None:
            from scipy import io as sio

            with atomic_path(os.path.join(result_dir, "Idenoised.mat")) as tmp:
                sio.savemat(tmp, {"Idenoised": restored})
        atomic_write_text(os.path.join(result_dir, "metrics.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def summary_line(summary):
    return (f"SIDD ({summary['blocks']} blocks, clamped, unrounded): PSNR {summary['psnr']:.4f} dB | "
            f"SSIM (scikit-image, Gaussian, per channel) {summary['ssim_skimage']:.4f} | "
            f"SSIM (MATLAB-style, volumetric) {summary['ssim_matlab']:.4f}")
