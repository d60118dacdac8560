"""Mixed-precision training settings: the ``train.amp`` config section, checked, and what the engine does with it.

    amp: {enable: false, level: O1, dtype: float16, init_loss_scaling: 1024}

- ``level`` O1: white-listed ops (convolutions, matmuls) run in ``dtype``, the weights stay float32.
  O2: the weights themselves are cast to ``dtype`` (``paddle.amp.decorate``) and the optimizer keeps float32
  master weights (``master_weight=True``), so small updates are not lost; checkpoints are written in float32.
  Paddle has no O3: the "O3" of the Ascend ports (everything in float16, no master weights) is refused with a
  pointer to O2, the closest level Paddle offers.  O0 means no AMP: write ``enable: false``.
- ``dtype`` float16 gets a dynamic loss scaler (``paddle.amp.GradScaler``, starting at ``init_loss_scaling``):
  the loss is scaled before backward, the gradients are unscaled before gradient clipping (the clip runs
  inside ``optimizer.step()``, which ``scaler.step`` calls after unscaling), and a step whose gradients hold
  inf/nan is skipped while the scale is lowered.  bfloat16 has float32's exponent range and needs no scaler.
- On the CPU, AMP does nothing in Paddle 3.3.1: training warns and runs in float32.
"""
from .config import ConfigError

LEVELS = ("O1", "O2")
DTYPES = ("float16", "bfloat16")
DEFAULTS = {"enable": False, "level": "O1", "dtype": "float16", "init_loss_scaling": 1024.0}
DTYPE_ALIASES = {"fp16": "float16", "half": "float16", "bf16": "bfloat16"}


def check_amp_config(amp, where="train.amp"):
    """Validate a ``train.amp`` mapping (defaults filled in); returns a new dict or raises ConfigError."""
    if amp is None:
        amp = {}
    if not isinstance(amp, dict):
        raise ConfigError(f"{where} must be a mapping like {DEFAULTS}, got {type(amp).__name__}")
    unknown = sorted(set(amp) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where} (allowed: {', '.join(DEFAULTS)})")
    out = {**DEFAULTS, **amp}
    if not isinstance(out["enable"], bool):
        raise ConfigError(f"{where}.enable must be true or false, got {out['enable']!r}")
    level = out["level"]
    if level not in LEVELS:
        if str(level).upper() == "O3":
            hint = ("Paddle has no O3 level; use O2 (float16 weights and activations with float32 master weights, "
                    "the closest to the O3 of the Ascend ports)")
        elif str(level).upper() == "O0":
            hint = "O0 means no mixed precision: set enable: false instead"
        elif str(level).upper() in LEVELS:
            hint = f"write it in upper case: {str(level).upper()}"
        else:
            hint = "choose O1 (float32 weights) or O2 (low-precision weights with float32 master weights)"
        raise ConfigError(f"{where}.level must be O1 or O2, got {level!r}: {hint}")
    dtype = out["dtype"]
    if dtype not in DTYPES:
        alias = DTYPE_ALIASES.get(str(dtype).lower())
        hint = f" (did you mean {alias}?)" if alias else ""
        raise ConfigError(f"{where}.dtype must be float16 or bfloat16, got {dtype!r}{hint}")
    scale = out["init_loss_scaling"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ConfigError(f"{where}.init_loss_scaling must be a positive number, got {scale!r}")
    out["init_loss_scaling"] = float(scale)
    return out


def amp_plan(amp, device, supports=None):
    """What training does with a checked ``amp`` section on ``device`` (a resolved device string).

    ``supports(dtype, device) -> bool`` tells whether the device computes in that dtype (None: assume it does);
    a device that cannot raises ConfigError.  Returns {enable, level, dtype, decorate (O2), master_weight,
    scaler (float16), init_loss_scaling, warning}."""
    kind = str(device).split(":", 1)[0]
    plan = {"enable": False, "level": amp["level"], "dtype": amp["dtype"], "decorate": False,
            "master_weight": False, "scaler": False, "init_loss_scaling": amp["init_loss_scaling"], "warning": None}
    if not amp["enable"]:
        return plan
    if kind == "cpu":
        plan["warning"] = (f"AMP ({amp['level']} {amp['dtype']}) needs a GPU or NPU; Paddle runs no mixed precision "
                           "on the CPU, so this run trains in float32")
        return plan
    if supports is not None and not supports(amp["dtype"], device):
        other = "float16" if amp["dtype"] == "bfloat16" else "bfloat16"
        raise ConfigError(f"train.amp.dtype {amp['dtype']} is not supported on {device} (bfloat16 needs an NVIDIA GPU "
                          f"of compute capability 8.0 or newer); use dtype {other} or enable: false")
    plan.update(enable=True, decorate=amp["level"] == "O2", master_weight=amp["level"] == "O2",
                scaler=amp["dtype"] == "float16")
    return plan
