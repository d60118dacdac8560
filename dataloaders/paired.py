"""Paired image folders: ``root/<input_dir>/NAME`` degraded, ``root/<target_dir>/NAME`` clean.

``PairedImageDataset`` serves every paired-folder data set (SIDD patches, GoPro, the lite sets); the GoPro
classes are the same data set with the official MIMO-UNet defaults.
"""
import os

import numpy as np

from utils.errors import DatasetError, ImageError
from utils.image_io import folder_pairs, read_image

from .registry import register_dataset
from .transforms import paired_channel_shuffle, paired_geometric, paired_hflip, paired_random_crop


def _positive(value, name, allow_none):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(f"{name} must be a positive integer{' or null' if allow_none else ''}, got {value!r}")
    return value


@register_dataset
class PairedImageDataset:
    """Image pairs with the same file name in two sub-folders of ``root``.

    ``patch_size`` set (training): a random crop of that size from the same place in both images (images
    smaller than the patch are reflect-padded), then the augmentations asked for: one of the 8 rotate/flip
    modes (``geometric_augs``), a horizontal flip on half of the samples (``hflip``), one random permutation of
    the colour channels of both images (``rgb_shuffle``).  ``patch_size`` null (validation): whole images, no
    augmentation.  ``cache`` keeps decoded images in memory (for small sets); ``max_images`` uses only the first N
    pairs and ``every`` every N-th pair (sorted by name).
    """
    pad_small = True  # smaller images are padded up to the patch (False: refused)

    def __init__(self, root, input_dir="input", target_dir="groundtruth", patch_size=None, geometric_augs=False,
                 hflip=False, rgb_shuffle=False, cache=False, max_images=None, every=1):
        if not os.path.isdir(root):
            raise DatasetError(f"data folder not found: {root}{self.hint}")
        try:
            self.pairs = folder_pairs(os.path.join(root, input_dir), os.path.join(root, target_dir))
        except ImageError as exc:
            raise DatasetError(f"{root}: {exc}") from None
        _positive(every, "every", allow_none=False)
        self.pairs = self.pairs[:int(max_images) if max_images else None][::every]
        self.names = [os.path.basename(p) for p, _ in self.pairs]
        self.root, self.patch_size = root, _positive(patch_size, "patch_size", allow_none=True)
        self.geometric_augs, self.hflip, self.rgb_shuffle = bool(geometric_augs), bool(hflip), bool(rgb_shuffle)
        self._cache = {} if cache else None

    hint = ""  # what to run when the folder is missing

    def set_patch_size(self, size):
        self.patch_size = _positive(size, "patch_size", allow_none=True)

    def __len__(self):
        return len(self.pairs)

    def load_pair(self, i):
        """The i-th pair as float32 (3, H, W) RGB arrays in [0, 1], unaugmented."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        inp_path, target_path = self.pairs[i]
        try:
            inp, target = read_image(inp_path), read_image(target_path)
        except ImageError as exc:
            raise DatasetError(str(exc)) from None
        if inp.shape != target.shape:
            raise DatasetError(f"input and target differ in size for {self.names[i]}: {inp.shape[1:]} vs "
                               f"{target.shape[1:]}")
        if self._cache is not None:
            self._cache[i] = (inp, target)
        return inp, target

    def __getitem__(self, i):
        inp, target = self.load_pair(i)
        if self.patch_size:
            if not self.pad_small and min(inp.shape[1:]) < self.patch_size:
                raise DatasetError(f"{self.names[i]} is {inp.shape[1]}x{inp.shape[2]}, smaller than patch_size "
                                   f"{self.patch_size}")
            inp, target = paired_random_crop(inp, target, self.patch_size)
            if self.geometric_augs:
                inp, target = paired_geometric(inp, target)
            if self.hflip:
                inp, target = paired_hflip(inp, target)
            if self.rgb_shuffle:
                inp, target = paired_channel_shuffle(inp, target)
        return np.ascontiguousarray(inp), np.ascontiguousarray(target)


_GOPRO_HINT = " (GoPro: run prepare_GoPro.py; lite data: tools/make_lite_data.py --task gopro)"


@register_dataset
class GoProDataset(PairedImageDataset):
    """GoPro training pairs (``blur/`` and ``sharp/``): the official MIMO-UNet augmentation, a random
    ``patch_size`` crop and a horizontal flip, optionally PairRandomRGBShuffle (``rgb_shuffle``)."""
    pad_small, hint = False, _GOPRO_HINT

    def __init__(self, root, patch_size=256, hflip=True, rgb_shuffle=False, input_dir="blur", target_dir="sharp"):
        super().__init__(root, input_dir, target_dir, patch_size, hflip=hflip, rgb_shuffle=rgb_shuffle)


@register_dataset
class GoProTestDataset(PairedImageDataset):
    """Whole-image GoPro pairs in file-name order, for validation and the test protocol; ``names[i]`` is the
    file.  ``every`` keeps every N-th pair only (GoPro test: 1,111 images; ``every: 10`` keeps 112)."""
    hint = _GOPRO_HINT

    def __init__(self, root, input_dir="blur", target_dir="sharp", every=1):
        super().__init__(root, input_dir, target_dir, every=every)

    @property
    def set_patch_size(self):  # whole images only: the engine sees no patch setter
        raise AttributeError("GoProTestDataset returns whole images")
