"""Learning-rate schedules by iteration, chosen by the config's ``train.scheduler`` section.

Every schedule is a pure function of the 0-based iteration ``i`` (the i-th optimizer step uses ``lr(i)``), so
a resumed run gets exactly the learning rates of an uninterrupted one.  ``base_lr`` is the optimizer's ``lr``.

- ``ConstantLR``: ``base_lr``.
- ``StepLR(step_size, gamma=0.1)``: ``base_lr * gamma ** (i // step_size)`` ("halve every N": gamma 0.5).
- ``MultiStepLR(milestones, gamma=0.1)``: multiplied by ``gamma`` at each milestone reached (``i >= m``).
- ``CosineAnnealingLR(T_max, eta_min=0)``: one half cosine from ``base_lr`` to ``eta_min`` over ``T_max``.
- ``CosineAnnealingRestartLR(periods, restart_weights=[1], eta_min=0)`` and
  ``CosineAnnealingRestartCyclicLR(periods, restart_weights=[1], eta_mins=[0])``: BasicSR's cosine cycles.
  Cycle ``c`` covers iterations ``(P[c-1], P[c]]`` of the cumulative periods ``P`` (the first starts at 0) and
  gives ``eta_min_c + w_c * (base_lr - eta_min_c) * (1 + cos(pi * (i - P[c-1]) / periods[c])) / 2``.  With
  MIRNetV2's ``periods [92000, 208000]``, ``eta_mins [3e-4, 1e-6]`` and ``lr 2e-4`` the rate rises from 2e-4 to
  3e-4 over the first cycle (its "minimum" is above the base rate), then anneals from 2e-4 to 1e-6.
  Past the last cycle the last cycle's formula continues to hold its final value.
"""
import bisect
import inspect
import math

import paddle

from .config import ConfigError


class ConstantLR:
    def __call__(self, i, base_lr):
        return base_lr


class StepLR:
    def __init__(self, step_size, gamma=0.1):
        if int(step_size) < 1:
            raise ConfigError(f"StepLR step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, i, base_lr):
        return base_lr * self.gamma ** (i // self.step_size)


class MultiStepLR:
    def __init__(self, milestones, gamma=0.1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)

    def __call__(self, i, base_lr):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, i)


class CosineAnnealingLR:
    def __init__(self, T_max, eta_min=0.0):
        if int(T_max) < 1:
            raise ConfigError(f"CosineAnnealingLR T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def __call__(self, i, base_lr):
        t = min(i, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class CosineAnnealingRestartCyclicLR:
    def __init__(self, periods, restart_weights=(1,), eta_mins=(0,)):
        self.periods = [int(p) for p in periods]
        if not self.periods or min(self.periods) < 1:
            raise ConfigError(f"{type(self).__name__} periods must be positive, got {periods}")
        self.weights = [float(w) for w in restart_weights]
        self.eta_mins = [float(e) for e in eta_mins]
        if not len(self.periods) == len(self.weights) == len(self.eta_mins):
            raise ConfigError(f"{type(self).__name__}: periods, restart_weights and eta_min(s) need the same length, "
                              f"got {len(self.periods)}, {len(self.weights)}, {len(self.eta_mins)}")
        self.cumulative = [sum(self.periods[:k + 1]) for k in range(len(self.periods))]

    def __call__(self, i, base_lr):
        c = min(bisect.bisect_left(self.cumulative, i), len(self.periods) - 1)
        start = self.cumulative[c - 1] if c else 0
        t = min(i - start, self.periods[c])
        eta = self.eta_mins[c]
        return eta + self.weights[c] * 0.5 * (base_lr - eta) * (1 + math.cos(math.pi * t / self.periods[c]))


class CosineAnnealingRestartLR(CosineAnnealingRestartCyclicLR):
    def __init__(self, periods, restart_weights=(1,), eta_min=0.0):
        super().__init__(periods, restart_weights, [eta_min] * len(periods))


SCHEDULES = {cls.__name__: cls for cls in (ConstantLR, StepLR, MultiStepLR, CosineAnnealingLR,
                                           CosineAnnealingRestartLR, CosineAnnealingRestartCyclicLR)}


class IterationLR(paddle.optimizer.lr.LRScheduler):
    """A Paddle LR scheduler whose rate is ``schedule(iteration, base_lr)``; call ``step(i)`` before step i."""

    def __init__(self, base_lr, schedule):
        self.schedule = schedule
        super().__init__(learning_rate=float(base_lr))

    def get_lr(self):
        return self.schedule(max(self.last_epoch, 0), self.base_lr)


def build_schedule(cfg):
    """The schedule function of a ``{type: ..., **kwargs}`` section (null means constant)."""
    cfg = dict(cfg or {"type": "ConstantLR"})
    name = cfg.pop("type", None)
    if name not in SCHEDULES:
        raise ConfigError(f"unknown scheduler {name!r}; known: {', '.join(sorted(SCHEDULES))}")
    cls = SCHEDULES[name]
    allowed = list(inspect.signature(cls).parameters)
    unknown = [k for k in cfg if k not in allowed]
    if unknown:
        raise ConfigError(f"scheduler {name} got unknown key(s) {unknown}; valid: {', '.join(allowed) or 'none'}")
    return cls(**cfg)


def build_scheduler(cfg, base_lr):
    return IterationLR(base_lr, build_schedule(cfg))
