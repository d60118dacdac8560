"""Clean images from a folder plus synthetic Gaussian noise: the training data of the DMSP denoiser (DAE).

The official DAE was trained at noise sigma 11 on BGR images in [0, 255]; the same noise is sigma 11 / 255 on
the pipeline's RGB images in [0, 1] (independent noise per value does not care about the channel order), and
the network's ``to_network_space`` does the rest.  The noisy input is not clipped, as in DAE training.
"""
import os

import numpy as np

from utils.errors import DatasetError, ImageError
from utils.image_io import list_images, read_image

from .registry import register_dataset


def image_folder(root, split):
    """The image folder of a data set: ``root/images/<split>`` (BSDS300 layout), ``root/<split>`` or ``root``."""
    for folder in (os.path.join(root, "images", split), os.path.join(root, split), root):
        if os.path.isdir(folder):
            return folder
    raise DatasetError(f"image folder not found: {root}")


@register_dataset
class GaussianNoiseFolder:
    """(noisy, clean) pairs: clean patches of the images in ``root``, noisy = clean + N(0, (sigma / 255)^2).

    - ``root``: a folder of images, or a BSDS300-style root whose ``images/<split>`` holds them.
    - ``patch_size``: random square crops of this size (training); ``None`` gives whole images (validation).
    - ``sigma``: noise std on the 0-255 scale (11 for the official DMSP prior).
    - ``augment``: random flips and 90-degree rotations of each crop.
    - ``repeat``: samples per image and pass (patches drawn anew each time).
    - ``seed``: ``None`` draws crops, augmentation and noise from NumPy's global generator (training: the
      engine seeds it for every sample, so runs and resumed runs repeat exactly); an integer makes sample ``i``
      the same every time, whatever the global state (validation).
    - ``cache``: keep the decoded images in memory (per worker process) instead of reading them every time.
    """

    def __init__(self, root, split="train", patch_size=64, sigma=11.0, augment=True, repeat=1, seed=None,
                 cache=False):
        if patch_size is not None and int(patch_size) < 1:
            raise DatasetError(f"patch_size must be positive or null, got {patch_size}")
        if sigma < 0 or int(repeat) < 1:
            raise DatasetError(f"sigma must be >= 0 and repeat >= 1, got sigma={sigma}, repeat={repeat}")
        folder = image_folder(root, split)
        try:
            self.files = list_images(folder)
        except ImageError:
            raise DatasetError(f"no images in {folder}") from None
        self.patch_size = None if patch_size is None else int(patch_size)
        self.sigma, self.augment, self.repeat, self.seed = float(sigma), bool(augment), int(repeat), seed
        self._cache = {} if cache else None

    def set_patch_size(self, size):
        self.patch_size = None if size is None else int(size)

    def __len__(self):
        return len(self.files) * self.repeat

    def _rng(self, index):
        """The generator of sample ``index``: fixed by (seed, index), or derived from NumPy's global one."""
        if self.seed is not None:
            return np.random.default_rng((int(self.seed), int(index)))
        return np.random.default_rng(np.random.randint(0, 2 ** 31 - 1, size=4))

    def _image(self, i):
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        try:
            img = read_image(self.files[i])
        except ImageError as exc:
            raise DatasetError(str(exc)) from None
        if self._cache is not None:
            self._cache[i] = img
        return img

    def __getitem__(self, index):
        img = self._image(index % len(self.files))
        rng = self._rng(index)
        if self.patch_size:
            ps = self.patch_size
            h, w = img.shape[1:]
            if h < ps or w < ps:  # small images are mirrored up to the patch size
                img = np.pad(img, ((0, 0), (0, max(ps - h, 0)), (0, max(ps - w, 0))), mode="reflect")
                h, w = img.shape[1:]
            top, left = rng.integers(0, h - ps + 1), rng.integers(0, w - ps + 1)
            img = img[:, top:top + ps, left:left + ps]
        if self.augment:
            img = np.rot90(img, k=int(rng.integers(0, 4)), axes=(1, 2))
            if rng.integers(0, 2):
                img = img[:, :, ::-1]
        clean = np.array(img, dtype=np.float32, order="C")  # a copy: cached images stay untouched
        noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(self.sigma / 255.0)
        return clean + noise, clean
