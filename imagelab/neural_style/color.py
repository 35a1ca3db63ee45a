"""Luminance-only transfer (Gatys, Bethge, Hertzmann and Shechtman 2016, "Preserving Color in
Neural Artistic Style Transfer", section 3): style is transferred on the luminance channel, and
the content's chroma is put back afterwards.

Colour space: full-range YCbCr of ITU-R BT.601 (the one JPEG uses), on RGB in [0, 1].
"""

import torch

_RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
_YCBCR_TO_RGB = torch.tensor(
    [
        [1.0, 0.0, 1.402],
        [1.0, -0.344136, -0.714136],
        [1.0, 1.772, 0.0],
    ]
)
_CHROMA_OFFSET = torch.tensor([0.0, 0.5, 0.5]).view(1, 3, 1, 1)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) Y, Cb, Cr in [0, 1]."""
    matrix = _RGB_TO_YCBCR.to(rgb)
    return torch.einsum("oc,bchw->bohw", matrix, rgb) + _CHROMA_OFFSET.to(rgb)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_ycbcr; the result is not clamped."""
    matrix = _YCBCR_TO_RGB.to(ycbcr)
    return torch.einsum("oc,bchw->bohw", matrix, ycbcr - _CHROMA_OFFSET.to(ycbcr))


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) BT.601 luma."""
    return rgb_to_ycbcr(rgb)[:, :1]


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style luminance to the content's mean and standard deviation
    (the paper's eq. 1), so the style's overall brightness and contrast do not leak in."""
    scale = content_y.std() / (style_y.std() + 1e-8)
    return ((style_y - style_y.mean()) * scale + content_y.mean()).clamp(0.0, 1.0)


def as_grey_rgb(y: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luminance -> (B, 3, H, W) grey image VGG can take."""
    return y.expand(-1, 3, -1, -1).contiguous()


def with_chroma_of(y: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
    """Combine a (B, 1, H, W) luminance with the chroma of a same-size RGB image."""
    chroma = rgb_to_ycbcr(content_rgb)[:, 1:]  # (B, 2, H, W) Cb, Cr
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0.0, 1.0)
