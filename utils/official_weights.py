"""Official checkpoints -> Paddle state dicts, for every architecture the converter knows.

Each entry of ``READERS`` maps an architecture name to a function ``path -> {key: numpy array}`` that
returns tensors already in Paddle's layout and under the official key names (which our networks use).
``convert_official`` then checks the result against the network built from ``network_cfg`` and refuses
any file whose keys or shapes do not match.
"""
import numpy as np

from .checkpoint import WeightsError, check_state_dict, unwrap_state_dict
from .torch_reader import TorchReadError, load_torch_file


def read_torch_state_dict(path, key=None):
    """State dict of a ``torch.save`` file (bare, ``{'params': ...}``, ``{'model': ...}``, ``module.`` prefixed)."""
    try:
        obj = load_torch_file(path)
    except (TorchReadError, OSError) as exc:
        raise WeightsError(str(exc)) from None
    state = unwrap_state_dict(obj, key)
    return {k: np.asarray(v) for k, v in state.items() if isinstance(v, np.ndarray)}


READERS = {
    "MIRNet_v2": read_torch_state_dict,  # official: torch.save({'params': state_dict}, 'real_denoising.pth')
    # official: torch.save({'model': state_dict[, 'optimizer': ..., 'scheduler': ..., 'epoch': ...]}, '*.pkl')
    "MIMOUNet": read_torch_state_dict,
    "MIMOUNetPlus": read_torch_state_dict,
}


def _fits_other_hint(state, arch):
    """' (the file fits X: use --arch X)' when the file is another registered network at its default configuration."""
    from .checkpoint import detect_network

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
