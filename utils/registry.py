"""One registry mechanism for everything a config names: networks, datasets, losses, schedules, optimizers.

A config section picks a registered class with ``name`` and passes its other keys as constructor arguments::

    network: {name: MIRNet_v2, n_feat: 80}
    loss: {name: L1Loss}

``type`` (the key word of older configs) is still read, with a one-line deprecation notice.  Unknown names and
unknown arguments raise ``UnknownNameError`` / ``UnknownArgumentError`` naming the closest valid spelling.
"""
import difflib
import inspect
import sys

from .errors import ConfigError, UnknownArgumentError, UnknownNameError

KEY = "name"
LEGACY_KEY = "type"
_told = set()


def closest(word, options, cutoff=0.5):
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or ''."""
    match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=cutoff)
    return f" (did you mean {match[0]!r}?)" if match else ""


def constructor_args(cls):
    """Names and defaults of a class's constructor arguments (``self`` left out)."""
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def normalise(cfg, where):
    """A copy of a registry section with its class under ``name``; ``type`` is accepted with a notice."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where} must be a mapping with a {KEY!r} key, got {cfg!r}")
    cfg = dict(cfg)
    if LEGACY_KEY in cfg and KEY not in cfg:
        cfg = {KEY: cfg.pop(LEGACY_KEY), **cfg}
        notice = f"note: {where}: the key {LEGACY_KEY!r} is deprecated, write '{KEY}: {cfg[KEY]}'"
        if notice not in _told:
            _told.add(notice)
            print(notice, file=sys.stderr)
    if KEY not in cfg:
        raise ConfigError(f"{where} needs a {KEY!r} key naming the class, got {cfg!r}")
    return cfg


class Registry(dict):
    """name -> class, filled by the ``register`` decorator; ``build(cfg)`` makes an instance from a section."""

    def __init__(self, kind, where):
        super().__init__()
        self.kind, self.where = kind, where  # e.g. "network", "the network section"

    def register(self, cls):
        self[cls.__name__] = cls
        return cls

    def get_class(self, name):
        if name not in self:
            raise UnknownNameError(f"unknown {self.kind} {name!r}{closest(name, self)}; registered: "
                                   f"{', '.join(sorted(self))}")
        return self[name]

    def build(self, cfg, where=None, **extra):
        """An instance of the class ``cfg`` names, with the section's other keys (and ``extra``) as arguments."""
        kwargs = normalise(cfg, where or self.where)
        cls = self.get_class(kwargs.pop(KEY))
        allowed = constructor_args(cls)
        unknown = [k for k in kwargs if k not in allowed]
        if unknown:
            hints = ", ".join(f"{k!r}{closest(k, allowed)}" for k in unknown)
            raise UnknownArgumentError(f"unknown key(s) {hints} in {where or self.where} ({cls.__name__}); valid: "
                                       f"{', '.join(allowed) or 'none'}")
        missing = [k for k, v in allowed.items() if v is inspect.Parameter.empty and k not in kwargs and k not in extra]
        if missing:
            raise UnknownArgumentError(f"{where or self.where} ({cls.__name__}) needs the key(s) {', '.join(missing)}")
        return cls(**kwargs, **extra)
