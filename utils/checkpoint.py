"""Weight files: strict loading with one-line errors, atomic saving, key/shape checks, and the one way every
downstream script rebuilds its network from a weights file (``build_from_weights``).

A ``.pdparams`` file holds a plain state dict, so ``paddle.load`` + ``set_state_dict`` work on it directly.
Nested checkpoints (``{'params': state_dict, ...}`` as the official MIRNetV2 files, ``{'model': ...}`` as the
MIMO-UNet ones) are unwrapped when read.
"""
import os

import numpy as np

from .errors import ConfigError, WeightsError
from .fileio import atomic_paddle_save

CONTAINER_KEYS = ("params", "model", "state_dict", "net", "params_ema")
WEIGHT_NAMES = ("model_best.pdparams", "model_latest.pdparams", "model.pdparams")  # looked for in a folder
INPUT_CHANNEL_KEYS = ("inp_channels", "in_channels", "in_nc")  # upstream spellings of the input-channel argument


def unwrap_state_dict(obj, key=None):
    """Find the state dict in a checkpoint object and strip DataParallel's ``module.`` prefix."""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise WeightsError(f"checkpoint has no entry {key!r}")
        obj = obj[key]
    elif isinstance(obj, dict):
        for k in CONTAINER_KEYS:
            if isinstance(obj.get(k), dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict):
        raise WeightsError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    out = {}
    for k, v in obj.items():
        out[k[len("module."):] if isinstance(k, str) and k.startswith("module.") else k] = v
    return out


def _shape(v):
    return tuple(int(s) for s in (v.shape if hasattr(v, "shape") else np.shape(v)))


def check_state_dict(expected, given, source="weights"):
    """Raise WeightsError naming the first mismatches unless ``given`` has exactly the keys and shapes of
    ``expected`` (both dicts of name -> array/tensor)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [f"{k} {list(_shape(given[k]))} (expected {list(_shape(expected[k]))})"
             for k in expected if k in given and _shape(given[k]) != _shape(expected[k])]
    if not (missing or unexpected or wrong):
        return
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            parts.append(f"{len(items)} {label}: {', '.join(map(str, items[:3]))}{more}")
    raise WeightsError(f"{source} does not fit the network: " + "; ".join(parts))


OFFICIAL_HEADS = (b"PK\x03\x04",  # torch.save's zip format
                  b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8",  # torch.save's legacy format (its pickled magic number)
                  b"MATLAB")  # MatConvNet .mat


def _starts_with(head, magic):
    """Whether ``head`` begins with ``magic`` (or is a beginning of it: a file cut shorter than the magic)."""
    return head.startswith(magic) or (0 < len(head) < len(magic) and magic.startswith(head))


def file_kind(path):
    """'empty', 'official' (a PyTorch or MATLAB checkpoint), 'pickle' (as paddle.save writes) or 'other'."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "empty"
    if any(_starts_with(head, magic) for magic in OFFICIAL_HEADS):
        return "official"
    return "pickle" if head.startswith(b"\x80") else "other"


def why_unreadable(path, exc=None, what="weights"):
    """One line on why ``paddle.load`` cannot read ``path``: empty, truncated or damaged, an official (PyTorch /
    MATLAB) checkpoint that needs converting, or not a Paddle file at all."""
    kind, size = file_kind(path), os.path.getsize(path)
    if kind == "empty":
        return f"{what} file {path} is empty (0 bytes): it was not written completely; write or copy it again"
    if kind == "official":
        return (f"{path} is an official PyTorch / MATLAB checkpoint, not Paddle {what}: convert it first with "
                "tools/convert_weights.py")
    detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}" if exc is not None else "unreadable"
    if kind == "pickle":  # complete pickles end with the STOP opcode
        with open(path, "rb") as f:
            f.seek(size - 1)
            state = "truncated" if f.read(1) != b"." else "corrupt"
        return (f"{what} file {path} is {state} ({size:,} bytes; {detail}): it was not written completely or was "
                "damaged; write or copy it again")
    return f"{path} is not a Paddle {what} file ({detail})"


def read_state_dict(path, key=None):
    """Read a ``.pdparams`` (or nested Paddle checkpoint) into a flat state dict."""
    import paddle

    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}" + (" (it is a folder)" if os.path.isdir(path) else ""))
    if file_kind(path) in ("empty", "official"):
        raise WeightsError(why_unreadable(path))
    try:
        obj = paddle.load(path)
    except Exception as exc:  # paddle raises many types for foreign or corrupt files
        raise WeightsError(why_unreadable(path, exc)) from None
    return unwrap_state_dict(obj, key)


def load_weights(model, path, key=None):
    """Strictly load weights into ``model``: any missing, unexpected or mis-shaped tensor is an error."""
    state = read_state_dict(path, key)
    check_state_dict(model.state_dict(), state, source=path)
    model.set_state_dict(state)
    return model


def save_weights(model_or_state, path):
    """Atomically write a plain state dict (from a layer or a dict) to ``path``."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    atomic_paddle_save(state, path)


def detect_network(state):
    """Name of the registered network whose default configuration fits ``state`` exactly, or None."""
    import paddle

    from networks import NETWORKS, build_network

    for name in NETWORKS:
        try:
            with paddle.LazyGuard():  # key names and shapes only: no parameter is initialised
                expected = build_network({"name": name}).state_dict()
            check_state_dict(expected, state)
            return name
        except (WeightsError, ConfigError, TypeError, ValueError):
            continue
    return None


def network_config_for(weights_path, config_path=None):
    """The ``network`` config to rebuild the network of a weights file.

    In order: the ``network`` section of ``config_path`` (a run config); the ``config.yml`` that training
    writes beside its weights; the default configuration of the registered network whose keys and shapes fit
    the file (converted official weights); the config a network's ``config_from_state_dict`` reads off the
    file (a folded DAE of any size).  Raises WeightsError when none applies.
    """
    from .config import load_config

    candidates = [config_path] if config_path else [os.path.join(os.path.dirname(os.path.abspath(weights_path)),
                                                                 "config.yml")]
    for path in candidates:
        if path and os.path.isfile(path):
            cfg = load_config(path)
            if "network" not in cfg:
                raise WeightsError(f"{path} has no 'network' section")
            return dict(cfg["network"])
        if config_path:
            raise WeightsError(f"config file not found: {config_path}")
    state = read_state_dict(weights_path)
    name = detect_network(state)
    if name is not None:
        return {"name": name}
    from networks import NETWORKS

    for cls in NETWORKS.values():  # networks whose weights describe their own size (config_from_state_dict)
        cfg = getattr(cls, "config_from_state_dict", lambda _: None)(state)
        if cfg is not None:
            return dict(cfg)
    raise WeightsError(f"{weights_path} fits no registered network at its default configuration; pass the "
                       "training config with -c")


def resolve_weights(path):
    """A weights file, or the best/latest ``.pdparams`` inside a training output folder."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in WEIGHT_NAMES:
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        found = sorted(f for f in os.listdir(path) if f.endswith(".pdparams"))
        if len(found) == 1:
            return os.path.join(path, found[0])
        raise WeightsError(f"{path} holds {len(found)} .pdparams files; pass the weights file itself")
    raise WeightsError(f"weights file not found: {path}")


def build_from_weights(weights, config=None, rgb_only=True):
    """(network in eval mode, its network config) for a weights file or training folder, the config found as
    ``network_config_for`` describes.  ``rgb_only`` refuses networks that do not take 3-channel images."""
    from networks import build_network

    weights = resolve_weights(weights)
    cfg = network_config_for(weights, config)
    channels = {k: cfg[k] for k in INPUT_CHANNEL_KEYS if k in cfg and cfg[k] != 3}
    if rgb_only and channels:
        raise WeightsError(f"the network takes {channels} input channels; these tools feed RGB images (3 channels)")
    try:
        net = build_network(cfg)
    except ConfigError as exc:
        raise WeightsError(f"cannot build the network {cfg}: {exc}") from None
    load_weights(net, weights)
    net.eval()
    return net, cfg
