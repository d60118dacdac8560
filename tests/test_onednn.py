"""oneDNN kernels of the CPU dygraph training step (utils/engine/onednn.py): values and gradients equal to
Paddle's own kernels, the networks' keys and outputs unchanged, the trainer's choice per device, and a
training run's losses and weights equal to those of Paddle's kernels."""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from networks import build_network
from networks.common import OPS
from utils.engine import Trainer, onednn

pytestmark = pytest.mark.skipif(not onednn.available()[0], reason=f"oneDNN unavailable: {onednn.available()[1]}")


def _tensor(rng, shape):
    return paddle.to_tensor(rng.standard_normal(shape).astype(np.float32))


def _values_and_grads(fn, inputs, seed=1):
    xs = [x.detach() for x in inputs]
    for x in xs:
        x.stop_gradient = False
    out = fn(*xs)
    dy = paddle.to_tensor(np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32))
    return [out.numpy()] + [g.numpy() for g in paddle.grad([out], xs, [dy])]


def _value_and_grads(compute, wrt, dy):
    """``compute()``'s output and the gradients of the tensors ``wrt`` for the output gradient ``dy``."""
    out = compute()
    return [out.numpy()] + [g.numpy() for g in paddle.grad([out], wrt, [dy])]


def _assert_close(want, got):
    assert len(want) == len(got)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))


def _record_conv2d(monkeypatch, key, default=None):
    """Route onednn.conv2d through a recorder: the list of each call's ``key`` keyword (``default`` if absent)."""
    calls, real = [], onednn.conv2d
    monkeypatch.setattr(onednn, "conv2d", lambda *a, **k: calls.append(k.get(key, default)) or real(*a, **k))
    return calls


def _assert_same(reference, ours, inputs):
    want, got = _values_and_grads(reference, inputs), _values_and_grads(ours, inputs)
    assert len(want) == len(got) == len(inputs) + 1
    for a, b in zip(want, got):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))


@pytest.mark.parametrize("n,c,h,w,o,k,stride,pad,dil,groups,bias", [
    (2, 8, 17, 19, 16, 3, 1, 1, 1, 1, True),    # 3x3, odd sizes
    (2, 16, 20, 20, 32, 3, 2, 1, 1, 2, False),  # strided, grouped
    (1, 3, 15, 15, 8, 3, 1, 2, 2, 1, True),     # an RGB input, dilated
    (2, 80, 16, 16, 80, 3, 1, 1, 1, 4, False),  # MIRNetV2's groups of 20 channels (oneDNN's GEMM path)
    (2, 64, 16, 16, 32, 1, 1, 0, 1, 1, True),   # 1x1
])
def test_convolution_and_both_gradients_match_paddle(n, c, h, w, o, k, stride, pad, dil, groups, bias):
    rng = np.random.default_rng(0)
    inputs = [_tensor(rng, (n, c, h, w)), _tensor(rng, (o, c // groups, k, k)) * 0.1]
    inputs += [_tensor(rng, (o,))] if bias else []

    def reference(x, wt, b=None):
        return F.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, groups=groups)

    def ours(x, wt, b=None):
        return onednn.conv2d(x, wt, b, (stride, stride), (pad, pad), (dil, dil), groups)

    _assert_same(reference, ours, inputs)


def _mul(a, b):
    return a * b


def _add(a, b):
    return a + b


@pytest.mark.parametrize("name,reference,ours,shapes", [
    ("product with a [N,1,H,W] mask", _mul, lambda a, b: onednn.multiply(a, b, _mul), [(2, 8, 5, 7), (2, 1, 5, 7)]),
    ("product with [N,C,1,1] weights", _mul, lambda a, b: onednn.multiply(a, b, _mul), [(2, 8, 5, 7), (2, 8, 1, 1)]),
    ("product, small operand first", _mul, lambda a, b: onednn.multiply(a, b, _mul), [(2, 8, 1, 1), (2, 8, 5, 7)]),
    ("product of equal shapes", _mul, lambda a, b: onednn.multiply(a, b, _mul), [(2, 8, 5, 7), (2, 8, 5, 7)]),
    ("broadcasting sum", _add, lambda a, b: onednn.add(a, b, _add), [(2, 8, 5, 7), (2, 8, 1, 1)]),
    ("leaky ReLU", lambda x: F.leaky_relu(x, 0.2), lambda x: onednn.leaky_relu(x, 0.2, None), [(2, 8, 5, 7)]),
    ("ReLU", F.relu, lambda x: onednn.leaky_relu(x, 0.0, None), [(2, 8, 5, 7)]),
    ("2x2 average pool, even size", lambda x: F.avg_pool2d(x, 2, ceil_mode=True, exclusive=True),
     lambda x: onednn.avg_pool(x, (2, 2), (2, 2), True, None), [(2, 8, 6, 8)]),
    ("2x2 average pool, odd size, ceil mode", lambda x: F.avg_pool2d(x, 2, ceil_mode=True, exclusive=True),
     lambda x: onednn.avg_pool(x, (2, 2), (2, 2), True, None), [(2, 8, 7, 9)]),
    ("2x2 average pool, odd size, floor", lambda x: F.avg_pool2d(x, 2),
     lambda x: onednn.avg_pool(x, (2, 2), (2, 2), False, None), [(2, 8, 7, 9)]),
    ("spatial mean", lambda x: F.adaptive_avg_pool2d(x, 1), lambda x: onednn.mean_hw(x, None), [(2, 8, 7, 9)]),
    ("spatial mean of 1 x 1", lambda x: F.adaptive_avg_pool2d(x, 1),
     lambda x: onednn.mean_hw(x, lambda t: F.adaptive_avg_pool2d(t, 1)), [(2, 8, 1, 1)]),
    ("bilinear x2", lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
     lambda x: onednn.upsample2(x, "bilinear", None), [(2, 8, 7, 9)]),
    ("channel concatenation", lambda a, b, c: paddle.concat([a, b, c], axis=1),
     lambda a, b, c: onednn.concat([a, b, c], 1, None), [(2, 3, 5, 7), (2, 8, 5, 7), (2, 1, 5, 7)]),
    ("row concatenation", lambda a, b: paddle.concat([a, b], axis=-2),
     lambda a, b: onednn.concat([a, b], -2, None), [(2, 3, 5, 7), (2, 3, 2, 7)]),
    ("nearest x2", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
     lambda x: onednn.upsample2(x, "nearest", None), [(2, 8, 7, 9)]),
    ("every second pixel, even size", lambda x: x[:, :, ::2, ::2], lambda x: onednn.nearest_half(x, None),
     [(2, 8, 6, 10)]),
    ("every second pixel, odd size", lambda x: x[:, :, 0:6:2, 0:8:2], lambda x: onednn.nearest_half(x, None),
     [(2, 8, 7, 9)]),
])
def test_element_wise_kernels_and_gradients_match_paddle(name, reference, ours, shapes):
    rng = np.random.default_rng(0)
    _assert_same(reference, ours, [_tensor(rng, s) for s in shapes])


NETS = [{"name": "MIRNet_v2", "n_feat": 16, "n_RRG": 4, "n_MRB": 1},  # grouped convs 1, 2, 4, 4 as the official
        {"name": "MIMOUNet", "num_res": 1}]


@pytest.mark.parametrize("cfg", NETS, ids=lambda c: c["name"])
def test_installed_network_keeps_keys_outputs_and_gradients(cfg, monkeypatch):
    paddle.seed(0)
    net = build_network(dict(cfg))
    keys = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    x = paddle.to_tensor(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))

    def loss_and_grads():
        out = net(x)
        loss = sum((o.abs().mean() for o in out), paddle.zeros([])) if isinstance(out, list) else out.abs().mean()
        grads = paddle.grad([loss], net.parameters())
        return [float(loss)] + [g.numpy() for g in grads]

    want = loss_and_grads()
    try:
        routed = onednn.install(net)
        assert routed > 10 and {k: tuple(v.shape) for k, v in net.state_dict().items()} == keys
        assert "mul" in OPS.__dict__  # the networks' element-wise steps are routed too
        calls = _record_conv2d(monkeypatch, "blocked", False)
        got = loss_and_grads()
        convs = sum(type(la) is paddle.nn.Conv2D for la in net.sublayers())
        assert len(calls) >= convs > 10  # every convolution ran on oneDNN (MIRNetV2 runs some twice)
        chained = sum(type(la).__name__ == "ResBlock" for la in net.sublayers()) * 2
        assert sum(calls) == chained  # MIMO-UNet's residual groups ran in the blocked layout
    finally:
        onednn.remove(net)
    assert "mul" not in OPS.__dict__ and not any("_native_forward" in la.__dict__ for la in net.sublayers())
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for a, b in zip(want[1:], got[1:]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()) + 1e-7)


def test_other_dtypes_and_static_programs_take_paddles_operators():
    """float64 calls and a traced program never reach the oneDNN layers (no PyLayer in an export)."""
    paddle.seed(0)
    net = build_network(dict(NETS[1]))
    x = paddle.to_tensor(np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32))
    want = net(x)[-1].numpy()
    try:
        onednn.install(net)
        calls = []
        layer = onednn._layer("mul")
        original = layer.apply
        layer.apply = lambda *a: calls.append(1) or original(*a)
        a64 = paddle.ones([1, 2, 3, 3], dtype="float64")
        assert OPS.mul(a64, a64).dtype == paddle.float64 and not calls
        static = paddle.jit.to_static(net, full_graph=True)
        got = static(x)[-1].numpy()
        assert not calls
        program = str(static.forward.get_concrete_program(x)[0].main_program)
        assert "pylayer" not in program.lower() and "conv2d" in program
    finally:
        layer.apply = original
        onednn.remove(net)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_plan_chooses_the_cpu_without_amp_only(monkeypatch):
    assert onednn.onednn_plan("auto", "cpu", False, False) == (True, None)
    assert onednn.onednn_plan(True, "cpu", False, False) == (True, None)
    for device in ("gpu:0", "npu:0", "npu", "gpu"):
        assert onednn.onednn_plan("auto", device, False, False) == (False, None)
        assert onednn.onednn_plan(True, device, False, False) == (False, None)
    assert onednn.onednn_plan(False, "cpu", False, False) == (False, None)
    assert onednn.onednn_plan("auto", "cpu", True, False) == (False, None)  # AMP: quietly Paddle's kernels
    use, note = onednn.onednn_plan(True, "cpu", True, False)
    assert not use and "AMP is on" in note
    use, note = onednn.onednn_plan(True, "cpu", False, True)
    assert not use and "cpu_static: true" in note
    monkeypatch.setattr(onednn, "available", lambda: (False, "OneDNNError: this Paddle wheel ships no oneDNN"))
    use, note = onednn.onednn_plan("auto", "cpu", False, False)
    assert not use and "unavailable (OneDNNError: this Paddle wheel ships no oneDNN)" in note


def test_missing_library_is_one_reason_and_nothing_else(monkeypatch, tmp_path):
    monkeypatch.setattr(onednn, "_LIB", None)
    for cache in ("_STATE", "_PLANS", "_PRIMS"):
        monkeypatch.setattr(onednn, cache, {})
    monkeypatch.setattr(paddle, "__file__", str(tmp_path / "paddle" / "__init__.py"))
    ok, reason = onednn.available()
    assert not ok and "ships no oneDNN library" in reason and "\n" not in reason


def test_interrupt_in_a_pylayer_backward_is_a_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with onednn.interrupts_unwrapped():
            raise OSError("(External) Error message in backward of GradNodePyLayer_OneDNNConv2D\nKeyboardInterrupt:")
    with pytest.raises(OSError, match="disk full"):
        with onednn.interrupts_unwrapped():
            raise OSError("disk full")


def _mirnet_cfg(lite, out, **train):
    cfg = {
        "seed": 3,
        "network": {"name": "MIRNet_v2", "n_feat": 16, "n_RRG": 4, "n_MRB": 1},
        "data": {"train": {"name": "PairedImageDataset", "root": str(lite / "SIDD_patches" / "train_mini")},
                 "val": None},
        "train": {"stages": [{"iters": 4, "batch_size": 2, "patch_size": 32}],
                  "optimizer": {"name": "Adam", "lr": 1e-3}, "scheduler": {"name": "ConstantLR"}},
        "output": {"model_dir": str(out / "model"), "log_dir": str(out / "logs"), "checkpoint_freq": 4},
        "log": {"print_freq": 1, "progress_bar": False, "visualdl": False, "figures": False},
    }
    cfg["train"].update(train)
    return cfg


def test_training_run_matches_paddles_kernels(sidd_lite, tmp_path):
    """Same seed, same batches: the loss curves agree to rtol 1e-4 and the weights after 4 Adam steps (merged
    with the oneDNN step) to 1e-4; the run's log says which step it took."""
    runs = {}
    for setting in ("auto", False):
        t = Trainer(_mirnet_cfg(sidd_lite, tmp_path / str(setting), onednn_ops=setting), device="cpu",
                    record_history=True)
        t.fit()
        runs[setting] = t
    assert runs["auto"].onednn_layers > 100 and runs[False].onednn_layers == 0
    assert runs["auto"].optimizer._use_multi_tensor and not runs[False].optimizer._use_multi_tensor  # merged_adam
    log = open(os.path.join(runs["auto"].model_dir, "train.log"), encoding="utf-8").read()
    assert "layers on oneDNN kernels, Adam as one merged kernel (train.onednn_ops: false for Paddle's own)" in log
    ours, ref = ([h["loss"] for h in runs[k].history] for k in ("auto", False))
    assert len(ours) == 4 and max(ref) - min(ref) > 1e-4
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
    a, b = runs["auto"].net.state_dict(), runs[False].net.state_dict()
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k].numpy() - b[k].numpy()).max()) for k in a) < 1e-4
    onednn.remove(runs["auto"].net)


def test_unavailable_kernels_train_on_paddles_with_one_warning(sidd_lite, tmp_path, monkeypatch):
    monkeypatch.setattr(onednn, "available", lambda: (False, "OneDNNError: simulated"))
    t = Trainer(_mirnet_cfg(sidd_lite, tmp_path, onednn_ops="auto"), device="cpu", record_history=True)
    t.fit()
    log = open(os.path.join(t.model_dir, "train.log"), encoding="utf-8").read()
    assert t.onednn_layers == 0 and len(t.history) == 4
    assert log.count("train.onednn_ops: oneDNN kernels unavailable (OneDNNError: simulated)") == 1


@pytest.mark.parametrize("cin,cout,k,stride,pad,bias", [(16, 8, 4, 2, 1, True), (8, 8, 3, 1, 1, False)])
def test_transposed_convolution_and_both_gradients_match_paddle(cin, cout, k, stride, pad, bias):
    rng = np.random.default_rng(0)
    layer = paddle.nn.Conv2DTranspose(cin, cout, k, stride=stride, padding=pad, bias_attr=None if bias else False)
    forward = onednn._layer_forward(layer)
    assert forward is not None
    inputs = [_tensor(rng, (2, cin, 7, 9)), layer.weight] + ([layer.bias] if bias else [])

    def reference(x, wt, b=None):
        return F.conv2d_transpose(x, wt, b, stride=stride, padding=pad)

    def ours(x, wt, b=None):
        return onednn.conv2d_transpose(x, wt, b, (stride, stride), (pad, pad), None)

    _assert_same(reference, ours, inputs)


@pytest.mark.parametrize("small", [(2, 1, 5, 7), (1, 8, 1, 1), (2, 8, 1, 1), (1, 1, 1, 1), (2, 8, 5, 1)])
def test_sums_to_a_broadcast_shape(small):
    full = _tensor(np.random.default_rng(0), (2, 8, 5, 7))
    axes = [i for i, (s, f) in enumerate(zip(small, full.shape)) if s == 1 and f > 1]
    want = full.numpy().sum(axis=tuple(axes), keepdims=True)
    got = onednn._sum_to(full, small).numpy()
    assert got.shape == small
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_setting_other_than_auto_true_false_is_refused(sidd_lite, tmp_path, value):
    from utils.config import ConfigError
    from utils.engine import resolve_config

    with pytest.raises(ConfigError, match=r"train.onednn_ops must be auto, true or false"):
        resolve_config(_mirnet_cfg(sidd_lite, tmp_path, onednn_ops=value))


class _Residual(paddle.nn.Layer):
    def __init__(self, c, last=None):
        super().__init__()
        self.main = paddle.nn.Sequential(paddle.nn.Conv2D(c, c, 3, padding=1), paddle.nn.ReLU(),
                                         last or paddle.nn.Conv2D(c, c, 3, padding=1))

    def forward(self, x):
        return self.main(x) + x


@pytest.mark.parametrize("last,chained", [
    (None, True),                                               # convolutions, ReLUs, sums: blocked inside
    (paddle.nn.Conv2D(16, 16, 3, padding=2, dilation=2), True),  # dilated, still "same"
    (paddle.nn.Conv2D(16, 16, 1), True),                         # 1x1
    (paddle.nn.Conv2D(16, 16, 3, padding=1, groups=2), False),  # grouped: plain tensors
    (paddle.nn.Conv2D(16, 16, 3, padding=1, padding_mode="reflect"), False),  # a padding oneDNN has not
    (paddle.nn.Softmax(axis=1), False),                         # not element by element
])
def test_conv_chain_keeps_values_and_gradients_in_the_blocked_layout(last, chained, monkeypatch):
    paddle.seed(0)
    layers = paddle.nn.Sequential(_Residual(16), _Residual(16, last))
    x = _tensor(np.random.default_rng(0), (2, 16, 13, 11))
    x.stop_gradient = False
    dy = _tensor(np.random.default_rng(2), x.shape)

    def values_and_grads():  # the output and the gradients of the input and of every weight
        return _value_and_grads(lambda: OPS.conv_chain(layers, x), [x] + layers.parameters(), dy)

    want = values_and_grads()  # Paddle's operators
    try:
        onednn.install(layers)
        blocked = _record_conv2d(monkeypatch, "blocked", False)
        got = values_and_grads()
        with paddle.no_grad():  # validation: another size, no autograd
            y = _tensor(np.random.default_rng(1), (1, 16, 9, 20))
            inference = OPS.conv_chain(layers, y).numpy()
    finally:
        onednn.remove(layers)
    try:  # removed from these layers, installed for another network: these take Paddle's operators again
        onednn.install(paddle.nn.Sequential(paddle.nn.Conv2D(3, 3, 1)))
        again = OPS.conv_chain(layers, x).numpy()
    finally:
        onednn.remove_ops()
    np.testing.assert_array_equal(again, want[0])
    assert blocked and all(blocked) == chained and any(blocked) == chained
    _assert_close(want, got)
    with paddle.no_grad():
        np.testing.assert_allclose(inference, layers(y).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("act,fused", [(paddle.nn.ReLU(), 0.0), (paddle.nn.LeakyReLU(0.2), 0.2),
                                       (paddle.nn.LeakyReLU(-0.5), None),  # a negative slope: two calls
                                       (paddle.nn.Sigmoid(), None)])
def test_convolution_and_relu_of_a_sequential_run_as_one_call(act, fused, monkeypatch):
    paddle.seed(0)
    seq = paddle.nn.Sequential(paddle.nn.Conv2D(8, 16, 3, padding=1), act, paddle.nn.Conv2D(16, 8, 1),
                               paddle.nn.ReLU())
    x, dy = _tensor(np.random.default_rng(0), (2, 8, 9, 7)), _tensor(np.random.default_rng(1), (2, 8, 9, 7))
    x.stop_gradient = False

    want = _value_and_grads(lambda: seq(x), [x] + seq.parameters(), dy)
    try:
        onednn.install(seq)
        acts = _record_conv2d(monkeypatch, "act")
        got = _value_and_grads(lambda: seq(x), [x] + seq.parameters(), dy)
    finally:
        onednn.remove(seq)
    assert acts == [fused, 0.0]  # the last pair (1x1 convolution + ReLU) always fuses
    assert "forward" not in seq.__dict__  # remove() restores the Sequential too
    _assert_close(want, got)


@pytest.mark.parametrize("residual_shape,fused", [((2, 16, 9, 7), True), ((2, 16, 1, 1), False)])
def test_convolution_plus_residual_runs_as_one_call(residual_shape, fused, monkeypatch):
    paddle.seed(0)
    conv = paddle.nn.Conv2D(8, 16, 3, padding=1)
    rng = np.random.default_rng(0)
    x, r, dy = _tensor(rng, (2, 8, 9, 7)), _tensor(rng, residual_shape), _tensor(rng, (2, 16, 9, 7))
    x.stop_gradient = r.stop_gradient = False

    def values_and_grads():
        return _value_and_grads(lambda: OPS.conv_add(conv, x, r), [x, r] + conv.parameters(), dy)

    want = values_and_grads()
    try:
        onednn.install(conv)
        residuals = _record_conv2d(monkeypatch, "residual")
        got = values_and_grads()
    finally:
        onednn.remove(conv)
    assert [res is not None for res in residuals] == [fused]  # one convolution call, the sum in it or after it
    assert "forward" not in conv.__dict__  # remove() restores the layer
    _assert_close(want, got)
