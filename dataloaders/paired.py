"""Paired image folders: ``root/<input_dir>/NAME`` degraded, ``root/<target_dir>/NAME`` clean."""
import os

import numpy as np

from utils.image_io import ImageError, is_image_file, read_image

from . import DatasetError, register_dataset
from .transforms import paired_geometric, paired_random_crop


def _list(folder):
    if not os.path.isdir(folder):
        raise DatasetError(f"data folder not found: {folder}")
    names = sorted(f for f in os.listdir(folder) if is_image_file(f) and not f.startswith("."))
    if not names:
        raise DatasetError(f"no images in {folder}")
    return names


def matched_names(input_folder, target_folder):
    """File names present in both folders; any name present in only one is an error."""
    inputs, targets = _list(input_folder), _list(target_folder)
    lonely_in = sorted(set(inputs) - set(targets))
    lonely_tg = sorted(set(targets) - set(inputs))
    if lonely_in or lonely_tg:
        parts = []
        for items, where in ((lonely_in, target_folder), (lonely_tg, input_folder)):
            if items:
                more = f" and {len(items) - 2} more" if len(items) > 2 else ""
                parts.append(f"{len(items)} file(s) missing from {where} ({', '.join(items[:2])}{more})")
        raise DatasetError("unmatched file names: " + "; ".join(parts))
    return inputs


@register_dataset
class PairedImageDataset:
    """Image pairs with the same file name in two sub-folders of ``root``.

    ``patch_size`` set (training): a random crop of that size from the same place in both images (images
    smaller than the patch are reflect-padded), plus one of the 8 rotate/flip modes when ``geometric_augs``.
    ``patch_size`` null (validation): whole images, no augmentation.  ``cache`` keeps decoded images in memory
    (for small sets); ``max_images`` uses only the first N pairs (sorted by name).
    """

    def __init__(self, root, input_dir="input", target_dir="groundtruth", patch_size=None, geometric_augs=False,
                 cache=False, max_images=None):
        self.input_folder = os.path.join(root, input_dir)
        self.target_folder = os.path.join(root, target_dir)
        self.names = matched_names(self.input_folder, self.target_folder)
        if max_images:
            self.names = self.names[:int(max_images)]
        self.patch_size = None
        self.set_patch_size(patch_size)
        self.geometric_augs = bool(geometric_augs)
        self._cache = {} if cache else None

    def set_patch_size(self, size):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise DatasetError(f"patch_size must be a positive integer or null, got {size!r}")
        self.patch_size = size

    def __len__(self):
        return len(self.names)

    def load_pair(self, i):
        """The i-th pair as float32 (3, H, W) RGB arrays in [0, 1], unaugmented."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        name = self.names[i]
        try:
            inp = read_image(os.path.join(self.input_folder, name))
            target = read_image(os.path.join(self.target_folder, name))
        except ImageError as exc:
            raise DatasetError(str(exc)) from None
        if inp.shape != target.shape:
            raise DatasetError(f"input and target differ in size for {name}: {inp.shape[1:]} vs {target.shape[1:]}")
        if self._cache is not None:
            self._cache[i] = (inp, target)
        return inp, target

    def __getitem__(self, i):
        inp, target = self.load_pair(i)
        if self.patch_size:
            inp, target = paired_random_crop(inp, target, self.patch_size)
            if self.geometric_augs:
                inp, target = paired_geometric(inp, target)
        return np.ascontiguousarray(inp), np.ascontiguousarray(target)
