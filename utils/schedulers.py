"""Learning-rate schedules by iteration and the optimizers, chosen by the config's ``train.scheduler`` and
``train.optimizer`` sections (``{name: ..., ...kwargs}``, utils/registry.py).

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

``build_optimizer(..., merged=True)`` gives Adam's update as one merged kernel over all parameters (Paddle's
multi-tensor Adam, ``merged_adam``): on the CPU it runs several times faster than the per-parameter kernel, with
the same state (moments and beta powers under the same keys, so resume states move between the two) and values
equal to float32 rounding.  The trainer asks for it with the oneDNN CPU step.
"""
import bisect
import math

import paddle

from .errors import ConfigError
from .registry import Registry

SCHEDULES = Registry("scheduler", "train.scheduler")
OPTIMIZERS = Registry("optimizer", "train.optimizer")


@SCHEDULES.register
class ConstantLR:
    def __call__(self, i, base_lr):
        return base_lr


@SCHEDULES.register
class StepLR:
    def __init__(self, step_size, gamma=0.1):
        if int(step_size) < 1:
            raise ConfigError(f"StepLR step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def __call__(self, i, base_lr):
        return base_lr * self.gamma ** (i // self.step_size)


@SCHEDULES.register
class MultiStepLR:
    def __init__(self, milestones, gamma=0.1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)

    def __call__(self, i, base_lr):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, i)


@SCHEDULES.register
class CosineAnnealingLR:
    def __init__(self, T_max, eta_min=0.0):
        if int(T_max) < 1:
            raise ConfigError(f"CosineAnnealingLR T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)

    def __call__(self, i, base_lr):
        t = min(i, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


@SCHEDULES.register
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


@SCHEDULES.register
class CosineAnnealingRestartLR(CosineAnnealingRestartCyclicLR):
    def __init__(self, periods, restart_weights=(1,), eta_min=0.0):
        super().__init__(periods, restart_weights, [eta_min] * len(periods))


class IterationLR(paddle.optimizer.lr.LRScheduler):
    """A Paddle LR scheduler whose rate is ``schedule(iteration, base_lr)``; call ``step(i)`` before step i."""

    def __init__(self, base_lr, schedule):
        self.schedule = schedule
        super().__init__(learning_rate=float(base_lr))

    def get_lr(self):
        return self.schedule(max(self.last_epoch, 0), self.base_lr)


def build_schedule(cfg):
    """The schedule function of a ``train.scheduler`` section (null means constant)."""
    return SCHEDULES.build(cfg or {"name": "ConstantLR"})


def build_scheduler(cfg, base_lr):
    return IterationLR(base_lr, build_schedule(cfg))


# ------------------------------------------------------------------------------------------------ optimizers
def _positive_lr(lr):
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"train.optimizer.lr must be a positive number, got {lr!r}")
    return float(lr)


@OPTIMIZERS.register
class Adam:
    """Adam (``weight_decay`` added to the gradient, as torch.optim.Adam)."""
    paddle_class = "Adam"

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, (self.beta1, self.beta2) = _positive_lr(lr), (float(b) for b in betas)
        self.eps, self.weight_decay = float(eps), weight_decay

    def make(self, common, merged=False):
        cls = merged_adam if merged and self.paddle_class == "Adam" else getattr(paddle.optimizer, self.paddle_class)
        return cls(beta1=self.beta1, beta2=self.beta2, epsilon=self.eps, weight_decay=self._decay(), **common)

    def _decay(self):
        return self.weight_decay or None


@OPTIMIZERS.register
class AdamW(Adam):
    """AdamW (decoupled weight decay, 0.01 unless given)."""
    paddle_class = "AdamW"

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=None):
        super().__init__(lr, betas, eps, weight_decay)

    def _decay(self):
        return 0.01 if self.weight_decay is None else self.weight_decay


@OPTIMIZERS.register
class SGD:
    """SGD with (Nesterov) momentum."""

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr, self.momentum, self.nesterov = _positive_lr(lr), float(momentum), bool(nesterov)
        self.weight_decay = weight_decay

    def make(self, common, merged=False):
        return paddle.optimizer.Momentum(momentum=self.momentum, use_nesterov=self.nesterov,
                                         weight_decay=self.weight_decay or None, **common)


def check_optimizer(cfg):
    """Validate a ``train.optimizer`` section (name, keys, lr) without building anything."""
    return OPTIMIZERS.build(cfg)


def build_optimizer(cfg, parameters, scheduler, grad_clip=None, merged=False):
    """The optimizer of a ``train.optimizer`` section over ``parameters``, stepping ``scheduler``, with the
    gradients clipped to the global L2 norm ``grad_clip`` when it is set; ``merged``: Adam as ``merged_adam``
    (the other optimizers are unchanged)."""
    clip = paddle.nn.ClipGradByGlobalNorm(float(grad_clip)) if grad_clip else None
    return OPTIMIZERS.build(cfg).make(dict(learning_rate=scheduler, parameters=parameters, grad_clip=clip),
                                      merged=merged)


def merged_adam(**kwargs):
    """``paddle.optimizer.Adam`` on its multi-tensor path (one ``merged_adam`` kernel per step).

    Paddle takes that path only for instances of its own class (it checks the class name), so this is a plain
    ``Adam`` whose ``step`` is guarded: Paddle fixes the merged parameter list at the first merged step and pairs
    it with each later step's gradients by position, so a step merges only when the parameters with a gradient
    are exactly that list (the first merged step: every trainable parameter, all float32); any other step -- a
    parameter without a gradient, one frozen or unfrozen since -- takes the per-parameter kernel, which updates
    the same accumulators."""
    opt = paddle.optimizer.Adam(use_multi_tensor=True, **kwargs)
    step, params, merged = opt.step, opt._parameter_list, []

    def guarded_step():
        if isinstance(params[0], dict):  # parameter groups: the per-parameter kernel
            opt._use_multi_tensor = False
            return step()
        live = [id(p) for p in params if not p.stop_gradient and p._grad_ivar() is not None]
        if not merged and len(live) == sum(not p.stop_gradient for p in params) and all(
                p.dtype == paddle.float32 for p in params):
            merged.append(live)
        opt._use_multi_tensor = bool(merged) and live == merged[0]
        try:
            return step()
        finally:
            opt._use_multi_tensor = True  # between steps the optimizer reads as merged (logs, records)

    opt.step = guarded_step
    return opt
