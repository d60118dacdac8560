"""Forward-alignment records: outputs of a runner on fixed inputs, saved and compared with reprod_log.

The inputs are deterministic noisy crops of a photograph bundled with scikit-image, at several sizes (by
default including sides that are not multiples of 4), so records made by different backends, processes or
machines are comparable.  Keys are ``out_<H>x<W>``.
"""
import numpy as np

from ..errors import UserError
from .restoration import default_image

DEFAULT_SIZES = ((64, 64), (61, 97), (33, 31))


def parse_sizes(text):
    """'64x64,61x97' -> ((64, 64), (61, 97))."""
    try:
        sizes = tuple(tuple(int(v) for v in s.lower().split("x")) for s in str(text).split(",") if s.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(len(s) != 2 or not (0 < s[0] <= 512 and 0 < s[1] <= 512) for s in sizes):
        raise UserError(f"sizes must look like 64x64,61x97 with sides in 1..512, got {text!r}")
    return sizes


def fixed_inputs(sizes=DEFAULT_SIZES):
    """name -> float32 (1, 3, H, W) input, the same on every run."""
    noisy, _ = default_image(512, sigma=15.0, seed=0)
    return {f"out_{h}x{w}": np.ascontiguousarray(noisy[None, :, :h, :w]) for h, w in sizes}


def record(run, sizes=DEFAULT_SIZES):
    """name -> output of ``run`` on each fixed input."""
    return {name: np.asarray(run(x), dtype=np.float32) for name, x in fixed_inputs(sizes).items()}


def save_record(path, outputs):
    from .restoration import save_reprod_log

    return save_reprod_log(path, outputs)


def _load_record(helper, path):
    try:
        info = helper.load_info(path)
    except Exception as exc:  # numpy and pickle raise many types for damaged or foreign files
        raise UserError(f"{path} is not a readable reprod_log record ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:120]})") from None
    if not isinstance(info, dict):
        raise UserError(f"{path} is not a reprod_log record (it holds a {type(info).__name__})")
    return info


def compare_files(path_a, path_b, threshold=1e-5, method="max", report=None):
    """Compare two records with ReprodDiffHelper; returns (passed, {key: max abs diff})."""
    import os

    from reprod_log import ReprodDiffHelper

    helper = ReprodDiffHelper()
    for path in (path_a, path_b):
        if not os.path.isfile(path):
            raise UserError(f"record not found: {path}")
    if report:
        from ..fileio import check_not_inputs

        check_not_inputs([report], [path_a, path_b], "give --report another name")
    a, b = _load_record(helper, path_a), _load_record(helper, path_b)
    if set(a) != set(b):
        raise UserError(f"records hold different keys: {sorted(set(a) ^ set(b))[:4]}")
    for k in a:
        if np.shape(a[k]) != np.shape(b[k]):
            raise UserError(f"{k}: shapes differ, {np.shape(a[k])} vs {np.shape(b[k])}")
    helper.compare_info(a, b)
    if report:
        helper.report(diff_method=method, diff_threshold=threshold, path=report)
    diffs = {k: float(v[method]) for k, v in helper.diff_dict.items()}
    return all(d <= threshold for d in diffs.values()), diffs
