"""YAML configs as plain nested dicts, with checked ``-o key.sub=value`` overrides.

Override values are parsed as YAML literals (``-o train.lr=2e-4``, ``-o data.patch_sizes=[128,160]``).
A key that does not exist in the config is refused, naming the closest valid key; prefix it with ``+`` to add
a new key on purpose (``-o +network.task=defocus_deblurring``).  List items are addressed by index
(``-o train.stages.0.iters=10``).
"""
import copy
import difflib
import os

import yaml

from .errors import ConfigError


def _yaml_loader():
    # PyYAML's safe loader reads 2e-4 as a string; accept the float forms users write.
    import re

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)$|^[-+]?(?:\d[\d_]*\.\d*|\.\d+)$"),
        list("-+0123456789."))
    return Loader


_LOADER = _yaml_loader()


def parse_value(text):
    """A YAML literal: numbers, booleans, null, lists, dicts; anything else stays a string."""
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError:
        return text


def yaml_error(path, exc):
    """One line for a YAML syntax error: the file, the line and column, and what is wrong there."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem, context = getattr(exc, "problem", None), getattr(exc, "context", None)
    what = (f"{problem} ({context})" if context else problem) if problem else str(exc).splitlines()[0]
    return ConfigError(f"{path}: invalid YAML{where}: {what}")


def read_yaml(path, what="config file"):
    """The mapping a YAML file holds; ConfigError (one line) for a missing, binary, malformed or non-mapping file.
    An empty file is an empty mapping."""
    if not os.path.isfile(path):
        raise ConfigError(f"{what} not found: {path}" + (" (it is a folder)" if os.path.isdir(path) else ""))
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (YAML) file") from None
    if "\0" in text:
        raise ConfigError(f"{path} is not a text (YAML) file")
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (key: value lines), got a {type(data).__name__}")
    return data


def load_config(path, overrides=()):
    """Load a YAML file into a dict and apply ``overrides`` (a list of ``key.sub=value`` strings)."""
    return apply_overrides(read_yaml(path), overrides)


def _all_keys(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{prefix}{k}"
            yield from _all_keys(v, f"{prefix}{k}.")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _all_keys(v, f"{prefix}{i}.")


def _unknown(cfg, dotted):
    match = difflib.get_close_matches(dotted, list(_all_keys(cfg)), n=1, cutoff=0.6)
    hint = f"; did you mean {match[0]!r}?" if match else ""
    return ConfigError(f"unknown config key {dotted!r}{hint} (prefix the key with '+' to add a new one)")


def set_by_path(cfg, dotted, value, allow_new=False):
    """Set ``cfg[a][b]... = value`` for ``dotted = 'a.b...'``; unknown keys raise ConfigError."""
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                raise _unknown(cfg, dotted)
            part = int(part)
        elif not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {'.'.join(parts[:i])!r} is not a mapping or list")
        elif part not in node:
            if not allow_new:
                raise _unknown(cfg, dotted)
            if not last:
                node[part] = {}
        if last:
            node[part] = value
        else:
            node = node[part]
    return cfg


def apply_overrides(cfg, overrides=()):
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.lstrip("+"):
            raise ConfigError(f"override must look like key.sub=value, got {item!r}")
        allow_new = key.startswith("+")
        set_by_path(cfg, key.lstrip("+"), parse_value(text.strip()), allow_new=allow_new)
    return cfg


def model_overrides(items, models):
    """``{model: {arg: value}}`` from command-line items ``MODEL.arg=value`` (tools that take ``-o``)."""
    out = {m: {} for m in models}
    for item in items:
        key, eq, value = item.partition("=")
        model, dot, arg = key.partition(".")
        if not (eq and dot and arg and model in out):
            raise ConfigError(f"override {item!r} must look like MODEL.key=value with MODEL one of {', '.join(models)}")
        out[model][arg] = parse_value(value)
    return out


def get_by_path(cfg, dotted, default=None):
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return default
    return node


def dump_config(cfg):
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def check_keys(section, allowed, where):
    """Refuse keys of a config section that the code does not know (closest valid key in the message)."""
    for key in section or {}:
        if key not in allowed:
            match = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            raise ConfigError(f"unknown key {key!r} in {where}{hint}; valid: {', '.join(sorted(allowed))}")
