"""Pictures for people: training curves, captioned comparisons and galleries of the best and worst images.

Everything is drawn headless (matplotlib's Agg canvas for the curves, OpenCV's built-in Hershey fonts for the
captions, so no font file and no display are needed) and written atomically.  Images are float32 RGB
(3, H, W) in [0, 1], as everywhere in the project.
"""
import heapq
import itertools

import numpy as np

from .fileio import atomic_path
from .image_io import write_image

GAP = 4                     # white pixels between panels and rows
CAPTION = 18                # height of a caption band
_FONT_SCALE = 0.9           # cv2.FONT_HERSHEY_PLAIN, shrunk to fit narrow panels


# ---------------------------------------------------------------------------------------------- curves
def plot_curves(path, losses, val, input_value=None, metric="psnr", title=""):
    """Write the training loss and the validation ``metric`` against the iteration as one PNG.

    ``losses``: [(iteration, loss)], ``val``: [(iteration, value)], ``input_value``: the metric of the
    unrestored input (drawn as a dashed line: what the model has to beat)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 3.0), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.subplots(1, 2)
    if losses:
        it, value = zip(*losses)
        ax_loss.plot(it, value, color="tab:blue", linewidth=1.2)
        if min(value) > 0 and max(value) / min(value) > 20:
            ax_loss.set_yscale("log")
    ax_loss.set_title("training loss")
    unit = " (dB)" if metric == "psnr" else ""
    if val:
        it, value = zip(*val)
        ax_val.plot(it, value, color="tab:green", marker="o", markersize=3, linewidth=1.2, label="restored")
    if input_value is not None:
        ax_val.axhline(input_value, color="tab:red", linestyle="--", linewidth=1.0,
                       label=f"input {input_value:.2f}{' dB' if metric == 'psnr' else ''}")
    if val or input_value is not None:
        ax_val.legend(loc="best", fontsize=8)
    ax_val.set_title(f"validation {metric.upper()}{unit}")
    for ax in (ax_loss, ax_val):
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# ---------------------------------------------------------------------------------------------- captions
def _text_band(text, width, height=CAPTION):
    """A white (3, height, width) band with ``text`` in black, shrunk to fit the width."""
    import cv2

    band = np.full((height, width, 3), 255, np.uint8)
    font, scale, thick = cv2.FONT_HERSHEY_PLAIN, _FONT_SCALE, 1
    (w, h), _ = cv2.getTextSize(text, font, scale, thick)
    if w > width - 4:
        scale *= (width - 4) / w
        (w, h), _ = cv2.getTextSize(text, font, scale, thick)
    cv2.putText(band, text, (max((width - w) // 2, 2), (height + h) // 2), font, scale, (0, 0, 0), thick,
                cv2.LINE_AA)
    return band.transpose(2, 0, 1).astype(np.float32) / 255.0


def _white(height, width):
    return np.ones((3, height, width), np.float32)


def _hstack(parts):
    out = [parts[0]]
    for p in parts[1:]:
        out += [_white(p.shape[1], GAP), p]
    return np.concatenate(out, axis=2)


def _vstack(parts):
    width = max(p.shape[2] for p in parts)
    padded = [p if p.shape[2] == width else np.concatenate([p, _white(p.shape[1], width - p.shape[2])], axis=2)
              for p in parts]
    out = [padded[0]]
    for p in padded[1:]:
        out += [_white(GAP, width), p]
    return np.concatenate(out, axis=1)


def captioned_row(images, captions):
    """Images of one height side by side, each with its caption above: float32 (3, H', W')."""
    return _hstack([np.concatenate([_text_band(c, img.shape[2]), np.clip(img, 0, 1)], axis=1)
                    for img, c in zip(images, captions)])


def _db(value):
    return "" if value is None else f" {value:.2f} dB"


def comparison(inp, out, gt=None, psnr_in=None, psnr_out=None, names=("input", "restored", "ground truth")):
    """input | restored (| ground truth) with their PSNRs in the captions."""
    images, captions = [inp, out], [names[0] + _db(psnr_in), names[1] + _db(psnr_out)]
    if gt is not None:
        images.append(gt)
        captions.append(names[2])
    return captioned_row(images, captions)


def write_comparison(path, inp, out, gt=None, psnr_in=None, psnr_out=None, names=("input", "restored",
                                                                                    "ground truth")):
    write_image(path, comparison(inp, out, gt, psnr_in, psnr_out, names))
    return path


# ---------------------------------------------------------------------------------------------- gallery
def revealing_crop(inp, gt, size):
    """(top, left) of the ``size`` x ``size`` window where the input differs most from the ground truth (the
    degradation is most visible there); the whole image when it is smaller."""
    h, w = inp.shape[1:]
    ch, cw = min(size, h), min(size, w)
    err = np.abs(np.asarray(inp, np.float64) - np.asarray(gt, np.float64)).mean(axis=0)
    integral = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(min(ch, cw) // 4, 1)
    best, where = -1.0, (0, 0)
    for top in sorted(set(range(0, h - ch + 1, step)) | {h - ch}):
        for left in sorted(set(range(0, w - cw + 1, step)) | {w - cw}):
            s = (integral[top + ch, left + cw] - integral[top, left + cw] - integral[top + ch, left]
                 + integral[top, left])
            if s > best:
                best, where = s, (top, left)
    return where


class Gallery:
    """Keeps crops of the ``count`` worst and ``count`` best images by PSNR while a data set is restored
    (memory for 2 x ``count`` crops, whatever the data set's size), then writes them as one PNG: a row per
    image, input | output | ground truth, worst first."""

    def __init__(self, count=3, crop=128):
        self.count, self.crop = int(count), int(crop)
        self._worst, self._best, self._n = [], [], itertools.count()

    def add(self, name, inp, out, gt, psnr_out, psnr_in=None):
        """Offer one restored image (``psnr_in``, the input's PSNR, is computed when None and the image is kept)."""
        if self.count < 1 or gt is None or psnr_out is None:
            return
        n = next(self._n)
        keep_worst = len(self._worst) < self.count or -psnr_out > self._worst[0][0]
        keep_best = len(self._best) < self.count or psnr_out > self._best[0][0]
        if not (keep_worst or keep_best):
            return
        if psnr_in is None:
            from .metrics import psnr

            psnr_in = psnr(np.clip(inp, 0, 1), gt)
        top, left = revealing_crop(inp, gt, self.crop)
        ch, cw = min(self.crop, inp.shape[1]), min(self.crop, inp.shape[2])
        crops = tuple(np.array(np.clip(a[:, top:top + ch, left:left + cw], 0, 1), np.float32)
                      for a in (inp, out, gt))
        entry = (name, psnr_in, psnr_out, crops)
        if keep_worst:
            (heapq.heappush if len(self._worst) < self.count else heapq.heapreplace)(self._worst,
                                                                                    (-psnr_out, n, entry))
        if keep_best:
            (heapq.heappush if len(self._best) < self.count else heapq.heapreplace)(self._best, (psnr_out, n, entry))

    def rows(self):
        """[(label, entry)] worst first, then the best ones not already shown."""
        worst = sorted((e for _, _, e in self._worst), key=lambda e: e[2])
        best = sorted((e for _, _, e in self._best), key=lambda e: -e[2])
        shown = {id(e) for e in worst}
        rows = [(f"worst {i + 1}", e) for i, e in enumerate(worst)]
        rows += [(f"best {i + 1}", e) for i, e in enumerate(best) if id(e) not in shown]
        return rows

    def image(self):
        rows = self.rows()
        if not rows:
            return None
        parts = []
        for label, (name, psnr_in, psnr_out, crops) in rows:
            row = captioned_row(crops, ["input" + _db(psnr_in), "output" + _db(psnr_out), "ground truth"])
            parts.append(np.concatenate([_text_band(f"{label}: {name}", row.shape[2]), row], axis=1))
        return _vstack(parts)

    def write(self, path):
        """Write the gallery PNG; returns ``path``, or None when no scored image was added."""
        img = self.image()
        if img is None:
            return None
        write_image(path, img)
        return path
