"""MIRNetV2 (Zamir et al., TPAMI 2022), module tree identical to the official checkpoint.

Attribute names follow the official state-dict keys, so official weights load as a plain copy.
Differences from the official model, none of which changes its weights or its output on sizes it
accepts: any height and width (edge padding to a multiple of 4, cropped back), and export-friendly
ops that also run fast under oneDNN (``+`` for branch sums, global average pooling for the means and the
context sum).
"""
import paddle
import paddle.nn.functional as F
from paddle import nn

from .common import OPS, pad_to_multiple, torch_default_init


def _add(tensors):
    """Sum of same-shaped tensors with ``+`` (element-wise adds run in oneDNN; ``paddle.add_n`` does not)."""
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out


def _conv(cin, cout, k, bias, groups=1):
    return nn.Conv2D(cin, cout, k, padding=k // 2, groups=groups, bias_attr=None if bias else False)


class SKFF(nn.Layer):
    """Selective kernel feature fusion of ``height`` same-shaped branches."""

    def __init__(self, in_channels, height=3, reduction=8, bias=False):
        super().__init__()
        d = max(int(in_channels / reduction), 4)
        self.conv_du = nn.Sequential(_conv(in_channels, d, 1, bias), nn.LeakyReLU(0.2))
        self.fcs = nn.LayerList([_conv(d, in_channels, 1, bias) for _ in range(height)])

    def forward(self, feats):
        z = self.conv_du(OPS.mean_hw(_add(feats)))
        att = F.softmax(paddle.stack([fc(z) for fc in self.fcs]), axis=0)
        return _add([OPS.mul(f, att[i]) for i, f in enumerate(feats)])  # indexing, not unbind: OpenVINO converts it


class ContextBlock(nn.Layer):
    """Global context (GCNet-style) block: softmax-pooled context added back to every pixel."""

    def __init__(self, n_feat, bias=False):
        super().__init__()
        self.conv_mask = _conv(n_feat, 1, 1, bias)
        self.channel_add_conv = nn.Sequential(
            _conv(n_feat, n_feat, 1, bias), nn.LeakyReLU(0.2), _conv(n_feat, n_feat, 1, bias))

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        logits = self.conv_mask(x)  # [N, 1, H, W]
        mask = F.softmax(logits.reshape([0, 1, -1]), axis=-1).reshape([0, 1, h, w])
        # sum over pixels of x * mask, as a global average pool times H * W: stays in oneDNN's blocked
        # layout (the official reshape + matmul reorders the whole feature map)
        context = OPS.mean_hw(OPS.mul(x, mask)) * (h * w)  # [N, C, 1, 1]
        return OPS.add(x, self.channel_add_conv(context))


class RCB(nn.Layer):
    """Residual context block."""

    def __init__(self, n_feat, kernel_size=3, reduction=8, bias=False, groups=1):
        super().__init__()
        self.body = nn.Sequential(
            _conv(n_feat, n_feat, 3, bias, groups), nn.LeakyReLU(0.2), _conv(n_feat, n_feat, 3, bias, groups))
        self.act = nn.LeakyReLU(0.2)
        self.gcnet = ContextBlock(n_feat, bias=bias)

    def forward(self, x):
        return self.act(self.gcnet(self.body(x))) + x


class Down(nn.Layer):
    def __init__(self, in_channels, chan_factor):
        super().__init__()
        self.bot = nn.Sequential(
            nn.AvgPool2D(2, ceil_mode=True, exclusive=True),
            _conv(in_channels, int(in_channels * chan_factor), 1, False))

    def forward(self, x):
        return self.bot(x)


class DownSample(nn.Layer):
    def __init__(self, in_channels, scale_factor, chan_factor=2):
        super().__init__()
        layers = []
        for _ in range(int(scale_factor).bit_length() - 1):
            layers.append(Down(in_channels, chan_factor))
            in_channels = int(in_channels * chan_factor)
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class Up(nn.Layer):
    def __init__(self, in_channels, chan_factor):
        super().__init__()
        self.bot = nn.Sequential(
            _conv(in_channels, int(in_channels // chan_factor), 1, False),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))

    def forward(self, x):
        return self.bot(x)


class UpSample(nn.Layer):
    def __init__(self, in_channels, scale_factor, chan_factor=2):
        super().__init__()
        layers = []
        for _ in range(int(scale_factor).bit_length() - 1):
            layers.append(Up(in_channels, chan_factor))
            in_channels = int(in_channels // chan_factor)
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class MRB(nn.Layer):
    """Multi-scale residual block: three resolutions, each RCB / SKFF applied twice with shared weights."""

    def __init__(self, n_feat, chan_factor, bias, groups):
        super().__init__()
        c0, c1, c2 = (int(n_feat * chan_factor ** i) for i in range(3))
        self.dau_top = RCB(c0, bias=bias, groups=groups)
        self.dau_mid = RCB(c1, bias=bias, groups=groups)
        self.dau_bot = RCB(c2, bias=bias, groups=groups)
        self.down2 = DownSample(c0, 2, chan_factor)
        self.down4 = nn.Sequential(DownSample(c0, 2, chan_factor), DownSample(c1, 2, chan_factor))
        self.up21_1 = UpSample(c1, 2, chan_factor)
        self.up21_2 = UpSample(c1, 2, chan_factor)
        self.up32_1 = UpSample(c2, 2, chan_factor)
        self.up32_2 = UpSample(c2, 2, chan_factor)
        self.conv_out = _conv(n_feat, n_feat, 1, bias)
        self.skff_top = SKFF(c0, 2)
        self.skff_mid = SKFF(c1, 2)

    def forward(self, x):
        top, mid, bot = x, self.down2(x), self.down4(x)
        for up32, up21 in ((self.up32_1, self.up21_1), (self.up32_2, self.up21_2)):
            top, mid, bot = self.dau_top(top), self.dau_mid(mid), self.dau_bot(bot)
            mid = self.skff_mid([mid, up32(bot)])
            top = self.skff_top([top, up21(mid)])
        return self.conv_out(top) + x


class RRG(nn.Layer):
    """Recursive residual group: n_MRB multi-scale residual blocks and a 3x3 conv."""

    def __init__(self, n_feat, n_MRB, chan_factor, bias=False, groups=1):
        super().__init__()
        layers = [MRB(n_feat, chan_factor, bias, groups) for _ in range(n_MRB)]
        layers.append(_conv(n_feat, n_feat, 3, bias))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x) + x


class MIRNet_v2(nn.Layer):
    """MIRNetV2 with the official constructor arguments and defaults (real denoising config).

    The official code builds 4 residual groups whatever ``n_RRG`` says; here ``n_RRG`` is honoured, and its
    default (4) gives the official network with grouped convs 1, 2, 4, 4.  ``height``, ``width`` and ``scale``
    are fixed by the official architecture; other values are refused rather than silently ignored.
    """

    size_multiple = 4  # the network itself needs H, W divisible by 4; forward() pads for you
    input_range = (0.0, 1.0)
    channel_order = "RGB"
    restoration_task = "denoising"  # "deblurring" with task='defocus_deblurring'

    def __init__(self, inp_channels=3, out_channels=3, n_feat=80, chan_factor=1.5, n_RRG=4, n_MRB=2,
                 height=3, width=2, scale=1, bias=False, task=None):
        super().__init__()
        if (height, width, scale) != (3, 2, 1):
            raise ValueError(f"MIRNet_v2 supports only height=3, width=2, scale=1 (the official architecture); "
                             f"got height={height}, width={width}, scale={scale}")
        if task not in (None, "defocus_deblurring"):
            raise ValueError(f"MIRNet_v2 task must be None or 'defocus_deblurring', got {task!r}")
        self.task = task
        if task == "defocus_deblurring":
            self.restoration_task = "deblurring"
        self.conv_in = _conv(inp_channels, n_feat, 3, bias)
        self.body = nn.Sequential(*[RRG(n_feat, n_MRB, chan_factor, bias, groups=min(2 ** i, 4))
                                    for i in range(n_RRG)])
        self.conv_out = _conv(n_feat, out_channels, 3, bias)
        torch_default_init(self)

    def forward(self, inp_img):
        h, w = inp_img.shape[2], inp_img.shape[3]
        x = pad_to_multiple(inp_img, self.size_multiple)
        shallow = self.conv_in(x)
        deep = self.body(shallow)
        if self.task == "defocus_deblurring":
            out = self.conv_out(deep + shallow)
        else:
            out = self.conv_out(deep) + x
        return out[:, :, :h, :w]
