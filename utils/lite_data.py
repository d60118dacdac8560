"""Lite data sets made offline, in seconds, from the photographs that ship inside scikit-image.

Each task writes the same folder layout as the real data set it imitates, so every script and the TIPC
chains run on a fresh machine with no download.  Output is deterministic for a seed and written atomically.
Tasks register in ``LITE_TASKS`` as ``name -> function(out_root, seed) -> summary string``.
"""
import numpy as np

# Colour photographs bundled with scikit-image (no download needed).
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "motorcycle_left", "rocket", "immunohistochemistry",
               "hubble_deep_field", "motorcycle_right", "retina", "cat", "colorwheel")


def photo_sources(names=PHOTO_NAMES):
    """Yield (name, uint8 RGB H x W x 3) for each available bundled colour photograph."""
    from skimage import data

    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            img = np.asarray(loader())
        except Exception:  # a photograph missing from this scikit-image build
            continue
        if isinstance(img, tuple):
            img = img[0]
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[2] >= 3 and img.dtype == np.uint8:
            yield name, np.ascontiguousarray(img[:, :, :3])


LITE_TASKS = {}
