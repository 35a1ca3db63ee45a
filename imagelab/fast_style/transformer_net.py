"""TransformerNet of Johnson et al. 2016, "Perceptual Losses for Real-Time Style Transfer".

Parameter names follow pytorch/examples `fast_neural_style/neural_style/transformer_net.py`
exactly (conv1.conv2d.weight, in1.weight, res1.conv1.conv2d.weight, deconv1.conv2d.weight, ...),
so the checkpoints users already have (candy.pth, mosaic.pth, ...) load unchanged. Instance
normalisation follows Ulyanov et al. 2016; the network maps 0-255 pixels to 0-255 pixels.
"""

import torch
from torch import nn
from torch.nn import functional as F

# The two stride-2 convolutions shrink by 4; other sizes are padded up and cropped back.
SIZE_MULTIPLE = 4


class InstanceNorm(nn.InstanceNorm2d):
    """Instance normalisation (Ulyanov et al. 2016) as group norm with one group per channel:
    the same function and parameter names, but torch's CPU group-norm kernel keeps
    channels_last and bf16 inputs as they are, where instance_norm copies them to contiguous
    fp32 and back (on a 2-core AVX512-BF16 Xeon at 512 px, 42 % of a bf16 pass went there)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


class ConvLayer(nn.Module):
    """Reflection padding then convolution, so borders carry no zero-padding artefacts."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    """He et al. 2016 residual block with instance norm, as in Johnson et al.'s supplement."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = InstanceNorm(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = InstanceNorm(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then convolution, which avoids the checkerboard
    artefacts of transposed convolutions (Odena et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, upsample: int):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    """(B, 3, H, W) pixels in 0-255 -> (B, 3, H, W) stylised pixels, unclamped.

    H and W must be multiples of SIZE_MULTIPLE; `stylize` in this package pads for callers.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 32, kernel_size=9, stride=1)
        self.in1 = InstanceNorm(32, affine=True)
        self.conv2 = ConvLayer(32, 64, kernel_size=3, stride=2)
        self.in2 = InstanceNorm(64, affine=True)
        self.conv3 = ConvLayer(64, 128, kernel_size=3, stride=2)
        self.in3 = InstanceNorm(128, affine=True)
        self.res1 = ResidualBlock(128)
        self.res2 = ResidualBlock(128)
        self.res3 = ResidualBlock(128)
        self.res4 = ResidualBlock(128)
        self.res5 = ResidualBlock(128)
        self.deconv1 = UpsampleConvLayer(128, 64, kernel_size=3, upsample=2)
        self.in4 = InstanceNorm(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, kernel_size=3, upsample=2)
        self.in5 = InstanceNorm(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))  # (B, 64, H/2, W/2)
        y = self.relu(self.in3(self.conv3(y)))  # (B, 128, H/4, W/4)
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))  # (B, 64, H/2, W/2)
        y = self.relu(self.in5(self.deconv2(y)))  # (B, 32, H, W)
        return self.deconv3(y)
