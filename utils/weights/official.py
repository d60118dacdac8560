"""Official checkpoints -> Paddle state dicts, for every architecture the converter knows.

Each entry of ``READERS`` maps an architecture name to a function ``path -> {key: numpy array}`` that
returns tensors already in Paddle's layout and under the official key names (which our networks use).
``convert_official`` then checks the result against the network built from ``network_cfg`` and refuses
any file whose keys or shapes do not match.
"""
import numpy as np

from ..checkpoint import WeightsError, check_state_dict, unwrap_state_dict
from .torch_reader import TorchReadError, load_torch_file


def read_torch_state_dict(path, key=None):
    """State dict of a ``torch.save`` file (bare, ``{'params': ...}``, ``{'model': ...}``, ``module.`` prefixed)."""
    try:
        obj = load_torch_file(path)
    except (TorchReadError, OSError) as exc:
        raise WeightsError(str(exc)) from None
    state = unwrap_state_dict(obj, key)
    return {k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}


def _mat_field(record, name):
    """Field ``name`` of a MATLAB struct element as loaded by scipy (``None`` when absent)."""
    names = getattr(record, "dtype", None) and record.dtype.names
    return record[name] if names and name in names else None


def _mat_text(value):
    return str(np.asarray(value).reshape(-1)[0]) if value is not None and np.size(value) else ""


def _mat_cell(value):
    """A MATLAB cell or struct array as a flat list of elements."""
    return list(np.asarray(value).reshape(-1)) if value is not None else []


def read_matconvnet_dae(path):
    """The DMSP denoiser of a MatConvNet ``simplenn`` file (``DAE_sigma11.mat``) under ``DAE``'s key names.

    ``net`` is the layer cell (or a struct whose ``layers`` field is) of conv / relu structs; each conv has
    ``weights = {W, b}`` with W of shape [3, 3, Cin, Cout] in MatConvNet's (width, height, in, out) order and b
    of shape [Cout, 1].  Paddle's OIHW layout is therefore ``W.transpose(3, 2, 1, 0)``.  Conv layers keep
    their names in the file (``conv1`` ... ``conv20``), which are ``DAE``'s attribute names.
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types for non-MATLAB or v7.3 (HDF5) files
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise WeightsError(f"cannot read {path} as a MATLAB file: {type(exc).__name__}: {detail}") from None
    if "net" not in mat:
        found = ", ".join(sorted(k for k in mat if not k.startswith("__"))) or "none"
        raise WeightsError(f"{path} is not a MatConvNet network: it has no 'net' variable (variables: {found})")
    net = mat["net"]
    if net.dtype.names and "layers" in net.dtype.names:  # net = struct('layers', {...}, 'meta', ...)
        net = net.reshape(-1)[0]["layers"]
    state = {}
    for index, layer in enumerate(_mat_cell(net)):
        layer = np.asarray(layer).reshape(-1)[0] if isinstance(layer, np.ndarray) else layer
        kind = _mat_text(_mat_field(layer, "type"))
        if kind == "relu":
            continue
        if kind != "conv":
            raise WeightsError(f"{path}: layer {index + 1} has type {kind or 'unknown'!r}; the DAE has only "
                               "conv and relu layers")
        name = _mat_text(_mat_field(layer, "name")) or f"conv{len(state) // 2 + 1}"
        weights = _mat_cell(_mat_field(layer, "weights"))
        if len(weights) != 2:
            raise WeightsError(f"{path}: conv layer {name!r} has {len(weights)} weight arrays, expected W and b")
        w, b = np.asarray(weights[0], dtype=np.float64), np.asarray(weights[1], dtype=np.float64)
        if w.ndim == 3:  # MATLAB drops a trailing singleton dimension (Cout = 1)
            w = w[..., None]
        if w.ndim != 4:
            raise WeightsError(f"{path}: conv layer {name!r} has weights of shape {list(w.shape)}, expected 4-D")
        state[f"{name}.weight"] = np.ascontiguousarray(w.transpose(3, 2, 1, 0))
        state[f"{name}.bias"] = b.reshape(-1)
    if not state:
        raise WeightsError(f"{path}: 'net' holds no conv layers")
    return state


READERS = {
    "MIRNet_v2": read_torch_state_dict,  # official: torch.save({'params': state_dict}, 'real_denoising.pth')
    # official: torch.save({'model': state_dict[, 'optimizer': ..., 'scheduler': ..., 'epoch': ...]}, '*.pkl')
    "MIMOUNet": read_torch_state_dict,
    "MIMOUNetPlus": read_torch_state_dict,
    "DAE": read_matconvnet_dae,  # official DMSP denoiser: MatConvNet simplenn 'DAE_sigma11.mat'
}


def _fits_other_hint(state, arch):
    """' (the file fits X: use --arch X)' when the file is another registered network at its default configuration."""
    from ..checkpoint import detect_network

    other = detect_network(state)
    return f" (the file fits {other}: use --arch {other})" if other and other != arch else ""


def convert_official(arch, src, network_cfg=None, key=None):
    """Read an official checkpoint of ``arch`` and return a float32 state dict that fits our network."""
    from networks import build_network

    if arch not in READERS:
        raise WeightsError(f"no official-weights reader for {arch!r}; known: {', '.join(sorted(READERS))}")
    reader = READERS[arch]
    state = reader(src, key) if key is not None else reader(src)
    net = build_network({"name": arch, **(network_cfg or {})})
    expected = net.state_dict()
    try:
        check_state_dict(expected, state, source=src)
    except WeightsError as exc:
        raise WeightsError(f"{exc}{_fits_other_hint(state, arch)}") from None
    return {k: np.ascontiguousarray(state[k], dtype=np.float32) for k in expected}
