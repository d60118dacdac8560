"""Datasets, chosen by the config's data sections: ``{name: <class name>, ...constructor kwargs}``.

Contract shared by every dataset (the training engine relies on nothing else):
- ``dataset[i]`` returns ``(input, target)``: float32 numpy arrays, RGB, (3, H, W), values in [0, 1].
- Training datasets crop to a patch size and expose ``set_patch_size(size)``; the engine calls it when a
  progressive-learning stage begins (before building that stage's loader).
- Validation datasets return whole images (``set_patch_size`` may be absent).
- Empty folders, unmatched file names and unreadable files raise ``DatasetError`` with a one-line message.
- Random choices in ``__getitem__`` (crops, flips) use NumPy's global generator (``np.random.*``) or Python's
  ``random``: the engine seeds both for every sample from (run seed, position in the data stream), so crops
  and data order are reproducible and a resumed run continues exactly.
"""
from utils.errors import DatasetError

from . import gaussian_noise, paired, sidd  # noqa: F401  (each module registers its datasets)
from .registry import DATASETS, build_dataset, register_dataset

__all__ = ["DATASETS", "DatasetError", "build_dataset", "register_dataset"]
