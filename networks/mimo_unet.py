"""MIMO-UNet and MIMO-UNet+ (Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image Deblurring",
ICCV 2021), module tree identical to the official checkpoints.

Attribute names follow the official state-dict keys, so official weights load as a plain copy.  The network
returns three images, coarse to fine: ``[1/4 scale, 1/2 scale, full scale]``; inference uses the last one
(``networks.primary_output``).  MIMO-UNet++ is MIMO-UNet+ with a rotation self-ensemble at test time
(``utils.ensemble.rotation_ensemble``), not a separate network.

Differences from the official model, none of which changes its weights or its output on the sizes it accepts
(H and W divisible by 4):

- any height and width: the input is edge-padded to a multiple of 4 and every output cropped back, to
  (ceil(H/4), ceil(W/4)), (ceil(H/2), ceil(W/2)) and (H, W) -- the pixels of each scale that sample the
  original image (the input pyramid takes every second pixel, starting with the first);
- nearest resizes by 1/2 are strided slices, not ``interpolate``: the pixels PyTorch's nearest picks when
  halving (index 2i), exact in every Paddle export and inference path (oneDNN's nearest x0.5 picks other
  pixels).  Doubling is ``interpolate`` (nearest, scale 2), which repeats each pixel in a 2 x 2 block in
  every path (dygraph, both export formats, oneDNN, OpenVINO, ONNX) and converts to one resize op for the
  engines, where a tiled copy would add tile and layout-reorder ops.
"""
from paddle import nn

from .common import OPS, pad_to_multiple, torch_default_init

BASE_CHANNEL = 32


def nearest_half(x):
    """Nearest-neighbour downsampling by 2 (rows and columns 0, 2, 4, ...; floor of odd sizes)."""
    return OPS.nearest_half(x)


def nearest_double(x):
    """Nearest-neighbour upsampling by 2: every pixel repeated in a 2 x 2 block."""
    return OPS.upsample2(x, "nearest")


class BasicConv(nn.Layer):
    """Convolution (padding k // 2) or k4 s2 transposed convolution (padding 1), then an optional ReLU."""

    def __init__(self, in_channel, out_channel, kernel_size, stride=1, relu=True, transpose=False):
        super().__init__()
        if transpose:
            conv = nn.Conv2DTranspose(in_channel, out_channel, kernel_size, stride=stride,
                                      padding=kernel_size // 2 - 1)
        else:
            conv = nn.Conv2D(in_channel, out_channel, kernel_size, stride=stride, padding=kernel_size // 2)
        self.main = nn.Sequential(conv, nn.ReLU()) if relu else nn.Sequential(conv)

    def forward(self, x):
        return self.main(x)


class ResBlock(nn.Layer):
    """x + conv3x3(relu(conv3x3(x)))."""

    def __init__(self, channel):
        super().__init__()
        self.main = nn.Sequential(BasicConv(channel, channel, 3), BasicConv(channel, channel, 3, relu=False))

    def forward(self, x):
        first, second = self.main[0], self.main[1]
        return OPS.conv_add(second.main[0], first(x), x)  # self.main(x) + x, the sum in the convolution's call


class ResGroup(nn.Layer):
    """``num_res`` residual blocks: the official EBlock and DBlock."""

    def __init__(self, channel, num_res):
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(channel) for _ in range(num_res)])

    def forward(self, x):
        return OPS.conv_chain(self.layers, x)


class AFF(nn.Layer):
    """Asymmetric feature fusion: the three encoder outputs, resized to one scale, fused by 1x1 + 3x3 convs."""

    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.conv = nn.Sequential(BasicConv(in_channel, out_channel, 1),
                                  BasicConv(out_channel, out_channel, 3, relu=False))

    def forward(self, x1, x2, x4):
        return self.conv(OPS.concat([x1, x2, x4], 1))


class SCM(nn.Layer):
    """Shallow convolutional module: features of a downsampled input image, the image itself appended."""

    def __init__(self, out_plane):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(3, out_plane // 4, 3), BasicConv(out_plane // 4, out_plane // 2, 1),
            BasicConv(out_plane // 2, out_plane // 2, 3), BasicConv(out_plane // 2, out_plane - 3, 1))
        self.conv = BasicConv(out_plane, out_plane, 1, relu=False)

    def forward(self, x):
        return self.conv(OPS.concat([x, self.main(x)], 1))


class FAM(nn.Layer):
    """Feature attention module: x1 + conv3x3(x1 * x2)."""

    def __init__(self, channel):
        super().__init__()
        self.merge = BasicConv(channel, channel, 3, relu=False)

    def forward(self, x1, x2):
        return OPS.conv_add(self.merge.main[0], OPS.mul(x1, x2), x1)  # x1 + self.merge(x1 * x2)


class MIMOUNet(nn.Layer):
    """MIMO-UNet: multi-input multi-output U-Net; ``num_res`` residual blocks per encoder/decoder stage."""

    size_multiple = 4  # the network itself needs H, W divisible by 4; forward() pads for you
    input_range = (0.0, 1.0)
    channel_order = "RGB"
    restoration_task = "deblurring"

    def __init__(self, num_res=8):
        super().__init__()
        if int(num_res) != num_res or num_res < 1:
            raise ValueError(f"num_res must be a positive integer, got {num_res!r}")
        c = BASE_CHANNEL
        self.Encoder = nn.LayerList([ResGroup(c, num_res), ResGroup(c * 2, num_res), ResGroup(c * 4, num_res)])
        self.feat_extract = nn.LayerList([
            BasicConv(3, c, 3), BasicConv(c, c * 2, 3, stride=2), BasicConv(c * 2, c * 4, 3, stride=2),
            BasicConv(c * 4, c * 2, 4, stride=2, transpose=True), BasicConv(c * 2, c, 4, stride=2, transpose=True),
            BasicConv(c, 3, 3, relu=False)])
        self.Decoder = nn.LayerList([ResGroup(c * 4, num_res), ResGroup(c * 2, num_res), ResGroup(c, num_res)])
        self.Convs = nn.LayerList([BasicConv(c * 4, c * 2, 1), BasicConv(c * 2, c, 1)])
        self.ConvsOut = nn.LayerList([BasicConv(c * 4, 3, 3, relu=False), BasicConv(c * 2, 3, 3, relu=False)])
        self.AFFs = nn.LayerList([AFF(c * 7, c), AFF(c * 7, c * 2)])
        self.FAM1 = FAM(c * 4)
        self.SCM1 = SCM(c * 4)
        self.FAM2 = FAM(c * 2)
        self.SCM2 = SCM(c * 2)
        torch_default_init(self)

    def drop_skips(self, res1, res2):
        """Regularisation of the fused skip features (none in MIMO-UNet)."""
        return res1, res2

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        x = pad_to_multiple(x, self.size_multiple)
        x_2 = nearest_half(x)
        x_4 = nearest_half(x_2)
        z2, z4 = self.SCM2(x_2), self.SCM1(x_4)

        res1 = self.Encoder[0](self.feat_extract[0](x))
        res2 = self.Encoder[1](self.FAM2(self.feat_extract[1](res1), z2))
        z = self.Encoder[2](self.FAM1(self.feat_extract[2](res2), z4))

        z42 = nearest_double(z)
        fused2 = self.AFFs[1](nearest_half(res1), res2, z42)
        fused1 = self.AFFs[0](res1, nearest_double(res2), nearest_double(z42))
        fused1, fused2 = self.drop_skips(fused1, fused2)

        z = self.Decoder[0](z)
        out_4 = self.ConvsOut[0](z) + x_4
        z = self.Decoder[1](self.Convs[0](OPS.concat([self.feat_extract[3](z), fused2], 1)))
        out_2 = self.ConvsOut[1](z) + x_2
        z = self.Decoder[2](self.Convs[1](OPS.concat([self.feat_extract[4](z), fused1], 1)))
        out = self.feat_extract[5](z) + x
        return [out_4[:, :, :(h + 3) // 4, :(w + 3) // 4], out_2[:, :, :(h + 1) // 2, :(w + 1) // 2],
                out[:, :, :h, :w]]


class MIMOUNetPlus(MIMOUNet):
    """MIMO-UNet+: 20 residual blocks per stage and channel dropout (p = 0.1) on the two fused skips."""

    def __init__(self, num_res=20):
        super().__init__(num_res)
        self.drop1 = nn.Dropout2D(0.1)
        self.drop2 = nn.Dropout2D(0.1)

    def drop_skips(self, res1, res2):
        return self.drop1(res1), self.drop2(res2)
