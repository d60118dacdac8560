"""Tiled inference with smooth blending, for images too large to restore in one piece.

The image is cut into square tiles of one size (a multiple of the network's ``size_multiple``, so no tile is
padded inside the network), overlapping by ``overlap`` pixels; the last tile of a row or column is shifted
back to end at the image border, so every tile has the same shape and tiles can be batched.  Each restored
tile is weighted by a separable window that is 1 in its interior and falls off with a raised-cosine (Hann)
ramp across the overlap; the weighted sum is divided by the summed weights.  The window never reaches zero,
so pixels covered by a single tile (image borders) come out exactly as that tile restored them.

``tiled_run(run, batch, tile, overlap)`` works with any ``run(batch) -> batch`` callable on float32
NCHW numpy arrays: the dygraph model, a Paddle Inference predictor or an ONNX Runtime session.
"""
import dataclasses

import numpy as np

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
# Images with more pixels than this are tiled when tiling is left on "auto" (MIRNetV2 needs about 4 GB at
# 1024 x 1024 without tiling).
AUTO_TILE_PIXELS = 1024 * 1024


def align_tile(tile, multiple):
    """Round a tile size down to a multiple of ``multiple`` (at least one multiple)."""
    multiple = max(int(multiple), 1)
    return max(int(tile) // multiple, 1) * multiple


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` overlap."""
    if length <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(size, overlap):
    """1-D weights of a tile: a Hann ramp over ``overlap`` pixels at both ends, 1 in between, never 0."""
    w = np.ones(size, dtype=np.float32)
    ramp = min(int(overlap), size // 2)
    if ramp > 0:
        r = np.sin(0.5 * np.pi * (np.arange(ramp, dtype=np.float64) + 1) / (ramp + 1)) ** 2
        w[:ramp] = r
        w[size - ramp:] = r[::-1]
    return w


@dataclasses.dataclass
class TilePlan:
    """How to tile: ``tile`` is a size (0 = never) or ``"auto"`` (``auto_size`` tiles for images with more than
    ``auto_pixels`` pixels); sizes are aligned to ``multiple``; ``batch`` tiles go through one forward pass."""
    tile: object = "auto"
    overlap: int = DEFAULT_OVERLAP
    multiple: int = 1
    batch: int = 1
    auto_size: int = DEFAULT_TILE
    auto_pixels: int = AUTO_TILE_PIXELS

    def size_for(self, height, width):
        """Aligned tile size for an image, or 0 when it is restored in one piece."""
        tile = self.tile
        if tile in (None, "auto"):
            tile = self.auto_size if height * width > self.auto_pixels else 0
        tile = int(tile)
        if tile < 0:
            raise ValueError(f"tile size must be >= 0, got {tile}")
        if tile == 0 or (height <= tile and width <= tile):
            return 0
        tile = align_tile(tile, self.multiple)
        if not 0 <= self.overlap < tile:
            raise ValueError(f"tile overlap must be in [0, tile size {tile}), got {self.overlap}")
        return tile


def tiled_run(run, batch, tile, overlap=DEFAULT_OVERLAP, tile_batch=1, progress=None):
    """Restore a (B, C, H, W) batch tile by tile with ``run`` and blend the tiles; returns float32 (B, C, H, W).

    ``tile`` must already be aligned (see ``TilePlan.size_for``); ``progress`` is an optional callable receiving the
    number of tiles just finished (e.g. a tqdm bar's ``update``).
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile size {tile}), got {overlap}")
    n, _, h, w = batch.shape
    th, tw = min(tile, h), min(tile, w)
    boxes = [(y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    weight = blend_window(th, overlap)[:, None] * blend_window(tw, overlap)[None, :]
    out, norm = None, np.zeros((h, w), dtype=np.float32)
    for y, x in boxes:
        norm[y:y + th, x:x + tw] += weight
    step = max(int(tile_batch), 1)
    for i in range(n):
        for k in range(0, len(boxes), step):
            group = boxes[k:k + step]
            crops = np.stack([batch[i, :, y:y + th, x:x + tw] for y, x in group])
            pred = np.asarray(run(np.ascontiguousarray(crops)), dtype=np.float32)
            if out is None:
                out = np.zeros((n, pred.shape[1], h, w), dtype=np.float32)
            for (y, x), p in zip(group, pred):
                out[i, :, y:y + th, x:x + tw] += p * weight
            if progress is not None:
                progress(len(group))
    out /= norm
    return out


def count_tiles(height, width, tile, overlap):
    th, tw = min(tile, height), min(tile, width)
    return len(tile_starts(height, th, overlap)) * len(tile_starts(width, tw, overlap))
