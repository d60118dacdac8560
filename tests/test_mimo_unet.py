"""MIMO-UNet specifics: output pyramid sizes, nearest resizes, dropout, multi-scale loss, self-ensemble."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from networks import build_network, primary_output
from networks.mimo_unet import nearest_double, nearest_half
from utils.deploy.ensemble import self_ensemble
from utils.losses import build_loss


def test_forward_sizes_any_input():
    """Outputs are (ceil(H/4), ceil(W/4)), (ceil(H/2), ceil(W/2)), (H, W) for the official network."""
    net = build_network({"name": "MIMOUNet"})
    net.eval()
    with paddle.no_grad():
        outs = net(paddle.rand([1, 3, 61, 97]))
    assert [list(o.shape) for o in outs] == [[1, 3, 16, 25], [1, 3, 31, 49], [1, 3, 61, 97]]
    assert all(bool(paddle.isfinite(o).all()) for o in outs)


def test_odd_size_is_crop_of_edge_padded_input():
    net = build_network({"name": "MIMOUNet", "num_res": 1})
    net.eval()
    x = paddle.rand([1, 3, 29, 22])
    padded = F.pad(x, [0, 2, 0, 3], mode="replicate")  # 32 x 24
    for small, big in zip(net(x), net(padded)):
        h, w = small.shape[2:]
        np.testing.assert_allclose(small.numpy(), big.numpy()[:, :, :h, :w], atol=1e-6)


def test_outputs_are_residuals_on_the_nearest_pyramid():
    """With the last convs zeroed each output is the input sampled at rows/columns 0, 2, 4, ... (0, 4, 8, ...)."""
    net = build_network({"name": "MIMOUNet", "num_res": 1})
    for layer in (net.ConvsOut[0], net.ConvsOut[1], net.feat_extract[5]):
        conv = layer.main[0]
        conv.weight.set_value(paddle.zeros_like(conv.weight))
        conv.bias.set_value(paddle.zeros_like(conv.bias))
    x = paddle.rand([1, 3, 16, 24])
    out4, out2, out = net(x)
    xn = x.numpy()
    np.testing.assert_array_equal(out.numpy(), xn)
    np.testing.assert_array_equal(out2.numpy(), xn[:, :, ::2, ::2])
    np.testing.assert_array_equal(out4.numpy(), xn[:, :, ::4, ::4])


@pytest.mark.parametrize("shape", [(1, 2, 8, 12), (2, 3, 7, 5)])
def test_nearest_resizes_match_interpolate(shape):
    x = paddle.rand(shape)
    h, w = shape[2] // 2, shape[3] // 2
    np.testing.assert_array_equal(nearest_half(x).numpy(), F.interpolate(x, size=[h, w], mode="nearest").numpy())
    np.testing.assert_array_equal(nearest_double(x).numpy(), x.numpy().repeat(2, axis=2).repeat(2, axis=3))


def test_nearest_double_gradient_sums_each_block():
    x = paddle.rand([2, 3, 5, 7])
    x.stop_gradient = False
    g = np.random.RandomState(0).rand(2, 3, 10, 14).astype("float32")
    (nearest_double(x) * paddle.to_tensor(g)).sum().backward()
    blocks = g.reshape(2, 3, 5, 2, 7, 2).sum(axis=(3, 5))
    np.testing.assert_allclose(x.grad.numpy(), blocks, rtol=1e-6)


def test_plus_dropout_only_in_training():
    net = build_network({"name": "MIMOUNetPlus", "num_res": 1})
    x = paddle.rand([1, 3, 16, 16])
    net.eval()
    np.testing.assert_array_equal(net(x)[-1].numpy(), net(x)[-1].numpy())
    net.train()
    assert not np.allclose(net(x)[-1].numpy(), net(x)[-1].numpy())
    assert isinstance(net.drop1, paddle.nn.Dropout2D) and net.drop1.p == 0.1


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_num_res_is_checked(bad):
    with pytest.raises(ValueError, match="num_res"):
        build_network({"name": "MIMOUNet", "num_res": bad})


# ---------------------------------------------------------------- loss
def _loss_inputs(seed=0, hw=(32, 24)):
    rng = np.random.RandomState(seed)
    h, w = hw
    y = rng.rand(2, 3, h, w).astype("float32")
    preds = [rng.rand(2, 3, h // s, w // s).astype("float32") for s in (4, 2, 1)]
    return preds, y


def test_multiscale_freq_loss_matches_official_formulation():
    """Same value and gradients as the official train.py computation (torch.fft for the removed torch.rfft)."""
    torch = pytest.importorskip("torch")
    preds, y = _loss_inputs()
    tp = [torch.tensor(p, requires_grad=True) for p in preds]
    ty = torch.tensor(y)
    labels = [torch.nn.functional.interpolate(ty, scale_factor=s, mode="bilinear") for s in (0.25, 0.5)] + [ty]
    l1 = torch.nn.L1Loss()
    content = sum(l1(p, t) for p, t in zip(tp, labels))
    freq = sum(l1(torch.view_as_real(torch.fft.fft2(p)), torch.view_as_real(torch.fft.fft2(t)))
               for p, t in zip(tp, labels))
    ref = content + 0.1 * freq
    ref.backward()
    pp = [paddle.to_tensor(p, stop_gradient=False) for p in preds]
    ours = build_loss({"name": "MultiScaleFreqLoss"})(pp, paddle.to_tensor(y))
    ours.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    for a, b in zip(pp, tp):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_multiscale_freq_loss_terms():
    """Explicit numpy version: bilinear labels, L1, and the L1 of stacked real/imaginary FFT parts."""
    preds, y = _loss_inputs(seed=1)
    pp, ty = [paddle.to_tensor(p) for p in preds], paddle.to_tensor(y)
    content_only = build_loss({"name": "MultiScaleFreqLoss", "freq_weight": 0.0})(pp, ty).item()
    freq_only = build_loss({"name": "MultiScaleFreqLoss", "content_weight": 0.0, "freq_weight": 1.0})(pp, ty).item()
    # bilinear (half-pixel) downsampling by 2 / 4 = mean of the two middle pixels of each 2 / 4 block, per axis
    def down(a, s):
        lo, hi = s // 2 - 1, s // 2
        a = 0.5 * (a[:, :, lo::s] + a[:, :, hi::s])
        return 0.5 * (a[:, :, :, lo::s] + a[:, :, :, hi::s])
    labels = [down(y, 4), down(y, 2), y]
    exp_content = sum(np.abs(p - t).mean() for p, t in zip(preds, labels))
    spec = [np.fft.fft2(p - t) for p, t in zip(preds, labels)]
    exp_freq = sum(np.abs(np.stack([s.real, s.imag], -1)).mean() for s in spec)
    assert content_only == pytest.approx(exp_content, rel=1e-5)
    assert freq_only == pytest.approx(exp_freq, rel=1e-5)
    both = build_loss({"name": "MultiScaleFreqLoss"})(pp, ty).item()
    assert both == pytest.approx(exp_content + 0.1 * exp_freq, rel=1e-5)


def test_multiscale_freq_loss_single_output_and_zero():
    y = paddle.rand([1, 3, 9, 7])
    loss = build_loss({"name": "MultiScaleFreqLoss"})
    assert loss(y, y).item() == 0.0
    # constant error 0.5: content 0.5; the FFT has only its DC term, 0.5 * 63, among 2 * 63 real/imag entries
    assert loss([y], y + 0.5).item() == pytest.approx(0.5 + 0.1 * 0.25, rel=1e-5)


def test_multiscale_freq_loss_refuses_unknown_arguments():
    from utils.config import ConfigError

    with pytest.raises(ConfigError, match="MultiScaleFreqLoss"):
        build_loss({"name": "MultiScaleFreqLoss", "fft_weight": 0.1})


# ---------------------------------------------------------------- self-ensemble
def _blur3(x):
    """A rotation- and flip-equivariant function: symmetric 3 x 3 smoothing then a pointwise nonlinearity."""
    k = paddle.to_tensor(np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], "float32") / 16).reshape([1, 1, 3, 3])
    c = x.shape[1]
    return paddle.tanh(F.conv2d(x, k.tile([c, 1, 1, 1]), padding=1, groups=c)) * 2


def _skewed(x):
    """Not rotation-equivariant: cumulative sum along the width."""
    return paddle.cumsum(x, axis=3) / x.shape[3]


@pytest.mark.parametrize("mode", ["rot4", "x8"])
def test_ensemble_of_equivariant_function_is_plain_output(mode):
    x = paddle.rand([2, 3, 10, 7])
    np.testing.assert_allclose(self_ensemble(_blur3, x, mode).numpy(), _blur3(x).numpy(), atol=1e-6)
    np.testing.assert_allclose(self_ensemble(lambda t: t, x, mode).numpy(), x.numpy(), atol=1e-6)


def test_rot4_ensemble_undoes_each_rotation():
    x = paddle.rand([1, 2, 6, 9])
    xn = x.numpy()
    expected = np.mean([np.rot90(_skewed(paddle.to_tensor(np.rot90(xn, k, axes=(2, 3)).copy())).numpy(), -k,
                                 axes=(2, 3)) for k in range(4)], axis=0)
    ours = self_ensemble(_skewed, x, "rot4").numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert not np.allclose(ours, _skewed(x).numpy(), atol=1e-3)  # the check above is not vacuous


def test_mimo_unet_plus_plus_on_rotation_invariant_input():
    """MIMO-UNet++ is rotation-equivariant, so on a 4-fold symmetric image its output is 4-fold symmetric;
    a single pass of the network is not."""
    net = build_network({"name": "MIMOUNetPlus", "num_res": 1})
    net.eval()
    a = np.random.RandomState(0).rand(1, 3, 12, 12).astype("float32")
    sym = a + np.rot90(a, 1, (2, 3)) + np.rot90(a, 2, (2, 3)) + np.rot90(a, 3, (2, 3))
    x = paddle.to_tensor(sym / 4)
    with paddle.no_grad():
        ens = self_ensemble(lambda t: primary_output(net(t)), x, "rot4").numpy()
        plain = primary_output(net(x)).numpy()
    np.testing.assert_allclose(ens, np.rot90(ens, 1, (2, 3)), atol=1e-6)
    assert not np.allclose(plain, np.rot90(plain, 1, (2, 3)), atol=1e-4)
    assert np.abs(ens - plain).max() < 0.5  # averaging keeps the network's output, it does not replace it


def test_ensemble_non_square_shape_and_errors():
    net = build_network({"name": "MIMOUNet", "num_res": 1})
    net.eval()
    with paddle.no_grad():
        out = self_ensemble(lambda t: primary_output(net(t)), paddle.rand([1, 3, 13, 21]), "rot4")
    assert list(out.shape) == [1, 3, 13, 21]
    with pytest.raises(ValueError, match="rot4"):
        self_ensemble(_blur3, paddle.rand([1, 3, 4, 4]), "rot8")
