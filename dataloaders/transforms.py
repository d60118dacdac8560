"""Paired augmentations on (C, H, W) numpy images.  Randomness comes from numpy's global generator, which the
training engine seeds per sample (so crops and flips are a function of the run's seed and iteration)."""
import numpy as np

NUM_GEOMETRIC_MODES = 8


def geometric(img, mode):
    """One of the 8 rotate/flip modes of the official MIRNetV2 augmentation, on a (C, H, W) array:
    0 identity, 1 vertical flip, 2/4/6 rotation by 90/180/270 degrees, 3/5/7 the same rotations then a
    vertical flip."""
    if not 0 <= mode < NUM_GEOMETRIC_MODES:
        raise ValueError(f"geometric mode must be 0..7, got {mode}")
    out = np.rot90(img, k=mode // 2, axes=(1, 2))
    if mode % 2:
        out = out[:, ::-1, :]
    return np.ascontiguousarray(out)


def pad_to_size(img, size):
    """Reflect-pad a (C, H, W) image so both sides are at least ``size``."""
    ph, pw = max(size - img.shape[1], 0), max(size - img.shape[2], 0)
    if not (ph or pw):
        return img
    mode = "reflect" if ph < img.shape[1] and pw < img.shape[2] else "symmetric"
    return np.pad(img, ((0, 0), (0, ph), (0, pw)), mode=mode)


def paired_random_crop(inp, target, size):
    """The same random ``size`` x ``size`` window from both images (padded first if they are smaller)."""
    inp, target = pad_to_size(inp, size), pad_to_size(target, size)
    h, w = inp.shape[1:]
    y = np.random.randint(0, h - size + 1)
    x = np.random.randint(0, w - size + 1)
    return inp[:, y:y + size, x:x + size], target[:, y:y + size, x:x + size]


def paired_geometric(inp, target):
    """The same random geometric mode applied to both images."""
    mode = np.random.randint(NUM_GEOMETRIC_MODES)
    return geometric(inp, mode), geometric(target, mode)


def paired_hflip(inp, target):
    """Both images mirrored left-right on half of the calls."""
    if np.random.rand() < 0.5:
        return inp[:, :, ::-1], target[:, :, ::-1]
    return inp, target


def paired_channel_shuffle(inp, target):
    """One random permutation of the colour channels applied to both images (PairRandomRGBShuffle)."""
    order = np.random.permutation(inp.shape[0])
    return inp[order], target[order]
