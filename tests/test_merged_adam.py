"""Adam as one merged kernel (utils/schedulers.py: merged_adam, used by the oneDNN CPU step): the updates of
Paddle's per-parameter Adam to float32 rounding, the merged kernel really used, steps in which a parameter has
no gradient handled, and states that move between the two."""
import numpy as np
import paddle
import pytest
from paddle.base.unique_name import UniqueNameGenerator

from utils.schedulers import build_optimizer, build_scheduler, merged_adam


def _net():
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 8, 3, padding=1), paddle.nn.ReLU(),
                                paddle.nn.Conv2D(8, 8, 3, padding=1), paddle.nn.Conv2D(8, 3, 1))


def _batches(n):
    rng = np.random.default_rng(0)
    return [paddle.to_tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32)) for _ in range(n)]


def _run(merged, batches, skip=(), state=None, steps=None):
    """Train a fresh seeded net on ``batches`` (the last layer unused in the steps of ``skip``); returns the
    parameters and the optimizer's state."""
    paddle.seed(0)
    names = UniqueNameGenerator()
    with paddle.utils.unique_name.guard(names):
        net = _net()
        sched = build_scheduler({"name": "CosineAnnealingLR", "T_max": 8, "eta_min": 1e-4}, 1e-2)
        opt = build_optimizer({"name": "Adam", "lr": 1e-2, "weight_decay": 1e-3}, net.parameters(), sched,
                              grad_clip=0.5, merged=merged)
        if state is not None:
            net.set_state_dict(state["net"])
            opt.set_state_dict(state["opt"])
            sched.set_state_dict(state["sched"])
        for i, x in enumerate(batches):
            out = net[:-1](x) if i in skip else net(x)
            (out ** 2).mean().backward()
            opt.step()
            opt.clear_grad(set_to_zero=False)
            sched.step()
    return [p.numpy() for p in net.parameters()], {
        "net": {k: v.clone() for k, v in net.state_dict().items()},
        "opt": {k: (v.clone() if isinstance(v, paddle.Tensor) else v) for k, v in opt.state_dict().items()},
        "sched": sched.state_dict()}, opt


def _max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def test_merged_updates_equal_adams_and_run_one_kernel_per_step(monkeypatch):
    from paddle.optimizer import adam as paddle_adam

    calls = []
    real = paddle_adam._C_ops.merged_adam_
    monkeypatch.setattr(paddle_adam._C_ops, "merged_adam_", lambda *a: calls.append(len(a[0])) or real(*a))
    batches = _batches(4)
    ref, _, plain = _run(False, batches)
    got, _, opt = _run(True, batches)
    assert not plain._use_multi_tensor and opt._use_multi_tensor
    assert calls == [6] * 4  # all six parameters, once per step
    assert _max_diff(ref, _run(False, batches[:1])[0]) > 1e-3  # the steps do move the weights
    assert _max_diff(ref, got) < 1e-6


def test_a_step_without_some_gradients_takes_the_per_parameter_kernel():
    """Paddle's own multi-tensor Adam fails on such a step (its merged list pairs gradients by position)."""
    batches = _batches(4)
    for skip in ((0,), (2,), (1, 3)):
        ref = _run(False, batches, skip=skip)[0]
        assert _max_diff(ref, _run(True, batches, skip=skip)[0]) < 1e-6
    paddle.seed(0)
    net = _net()
    raw = paddle.optimizer.Adam(parameters=net.parameters(), learning_rate=1e-2, use_multi_tensor=True)
    x = batches[0]
    net(x).mean().backward()
    raw.step()
    raw.clear_grad(set_to_zero=False)
    net[:-1](x).mean().backward()
    with pytest.raises(ValueError):
        raw.step()


def test_states_move_between_per_parameter_and_merged_adam():
    batches = _batches(4)
    whole_plain = _run(False, batches)[0]
    whole_merged = _run(True, batches)[0]
    for first, then in ((False, True), (True, False), (True, True)):
        state = _run(first, batches[:2])[1]
        resumed = _run(then, batches[2:], state=state)[0]
        if first and then:  # merged -> merged: the same run, bit for bit
            assert _max_diff(resumed, whole_merged) == 0.0
        else:
            assert _max_diff(resumed, whole_plain) < 1e-6


def test_other_optimizers_are_unchanged():
    net = _net()
    sched = build_scheduler(None, 1e-2)
    for cfg, cls in (({"name": "AdamW", "lr": 1e-2}, paddle.optimizer.AdamW),
                     ({"name": "SGD", "lr": 1e-2, "momentum": 0.9}, paddle.optimizer.Momentum)):
        opt = build_optimizer(cfg, net.parameters(), sched, merged=True)
        assert type(opt) is cls and not opt._use_multi_tensor
    assert type(merged_adam(parameters=net.parameters(), learning_rate=1e-3)) is paddle.optimizer.Adam
