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

from .errors import ConfigError, UnknownArgumentError, UnknownNameError, UserError

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


def expected_type(default, value):
    """What ``value`` should be, judged by the constructor's ``default`` (None when it fits or cannot be judged):
    an integer for an integer default, a number for a float one, true/false for a boolean, text for text, a
    list for a list or tuple.  Defaults of None or of other types accept anything."""
    if value is None or default is None or default is inspect.Parameter.empty:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "text"
    if isinstance(default, (list, tuple)):
        return None if isinstance(value, (list, tuple)) else "a list"
    return None


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
        wrong = [(k, expected_type(allowed[k], v)) for k, v in kwargs.items() if expected_type(allowed[k], v)]

        def wrong_type():
            k, expected = wrong[0]
            return ConfigError(f"{where or self.where}.{k} must be {expected} (the default of {cls.__name__} is "
                               f"{allowed[k]!r}), got {kwargs[k]!r}")

        try:  # the class's own checks speak first; a value of the wrong type is refused even if it builds
            obj = cls(**kwargs, **extra)
        except UserError:
            raise
        except Exception as exc:
            if wrong:
                raise wrong_type() from None
            if not isinstance(exc, (TypeError, ValueError, AssertionError, ZeroDivisionError)):
                raise
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__  # values the class cannot use
            raise ConfigError(f"cannot build {cls.__name__} from {where or self.where} {kwargs}: {detail}") from None
        if wrong:
            raise wrong_type()
        return obj
