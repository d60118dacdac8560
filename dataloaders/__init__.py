"""Datasets, chosen by the config's data sections: ``{type: <class name>, ...constructor kwargs}``.

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
import difflib
import inspect


class DatasetError(ValueError):
    pass


DATASETS = {}


def register_dataset(cls):
    DATASETS[cls.__name__] = cls
    return cls


def build_dataset(cfg):
    from utils.config import ConfigError

    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(f"a dataset config needs a 'type' key, got {cfg!r}")
    kwargs = dict(cfg)
    name = kwargs.pop("type")
    if name not in DATASETS:
        match = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise ConfigError(f"unknown dataset type {name!r}{hint}; known: {', '.join(sorted(DATASETS))}")
    cls = DATASETS[name]
    allowed = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ConfigError(f"dataset {name} got unknown key(s) {unknown}; valid: {', '.join(allowed)}")
    return cls(**kwargs)


from . import gaussian_noise, gopro, paired, sidd  # noqa: E402,F401  (registers the datasets)
