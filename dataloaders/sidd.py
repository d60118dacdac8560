"""SIDD validation blocks as a data set, and the one reader of the SIDD ``.mat`` block files.

``ValidationNoisyBlocksSrgb.mat`` / ``ValidationGtBlocksSrgb.mat`` hold uint8 arrays of shape
[images, blocks, H, W, 3]: 40 x 32 x 256 x 256 x 3 for the SIDD validation set.
"""
import os

import numpy as np

from utils.errors import DatasetError

from .registry import register_dataset

NOISY_KEY, GT_KEY = "ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"
DOWNLOAD_HINT = f"{NOISY_KEY}.mat and {GT_KEY}.mat come from the SIDD benchmark page"


def read_sidd_blocks(path, key=None):
    """The uint8 [images, blocks, H, W, 3] array of a SIDD ``.mat`` file.  ``key`` names the variable; None
    takes the one named like the file, else the file's only variable."""
    from scipy.io import loadmat

    if not os.path.isfile(path):
        raise DatasetError(f"SIDD file not found: {path} ({DOWNLOAD_HINT})")
    try:
        mat = loadmat(path)
    except NotImplementedError:
        raise DatasetError(f"{path} is a MATLAB v7.3 (HDF5) file; save it as v7 (-v7) to read it here") from None
    except Exception as exc:  # scipy raises several types for non-MAT or damaged files
        raise DatasetError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}") from None
    arrays = {k: v for k, v in mat.items() if not k.startswith("__")}
    want = key or os.path.splitext(os.path.basename(path))[0]
    found = want if want in arrays else (next(iter(arrays)) if key is None and len(arrays) == 1 else None)
    if found is None:
        raise DatasetError(f"{path} has no variable {want!r} (found: {', '.join(arrays) or 'none'})")
    blocks = np.asarray(arrays[found])
    if blocks.ndim != 5 or blocks.shape[-1] != 3 or blocks.dtype != np.uint8:
        raise DatasetError(f"{path}: {found} must be uint8 [images, blocks, H, W, 3], got {blocks.dtype} "
                           f"{list(blocks.shape)}")
    return blocks


@register_dataset
class SIDDValidationBlocks:
    """The SIDD validation blocks (the two ``.mat`` files in ``root``): 40 images x 32 blocks of 256 x 256 sRGB,
    returned block by block as whole images, named ``IIII_BB.png`` (image, block; from 1).
    ``max_images`` uses only the first N blocks (a quicker validation during training); ``noisy_key`` /
    ``gt_key`` name the variables in the files (default: the file's name, or its only variable)."""

    def __init__(self, root, noisy_file=NOISY_KEY + ".mat", gt_file=GT_KEY + ".mat", max_images=None,
                 noisy_key=None, gt_key=None):
        noisy = read_sidd_blocks(os.path.join(root, noisy_file), noisy_key)
        gt = read_sidd_blocks(os.path.join(root, gt_file), gt_key)
        if noisy.shape != gt.shape:
            raise DatasetError(f"noisy and ground-truth blocks differ in shape: {list(noisy.shape)} vs "
                               f"{list(gt.shape)}")
        self.layout = noisy.shape  # [images, blocks, H, W, 3], as Idenoised.mat is written
        self.blocks_per_image = noisy.shape[1]
        self.noisy, self.gt = noisy.reshape((-1,) + noisy.shape[2:]), gt.reshape((-1,) + gt.shape[2:])
        n = len(self.noisy) if not max_images else min(int(max_images), len(self.noisy))
        self.names = [f"{i // self.blocks_per_image + 1:04d}_{i % self.blocks_per_image + 1:02d}.png"
                      for i in range(n)]

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return _to_float(self.noisy[i]), _to_float(self.gt[i])


def _to_float(block):
    """uint8 H x W x 3 -> float32 (3, H, W) in [0, 1]."""
    return np.ascontiguousarray(block.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)
