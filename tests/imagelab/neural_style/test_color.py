import torch

from imagelab.neural_style.color import luminance, match_luminance, rgb_to_ycbcr, with_chroma_of, ycbcr_to_rgb


def test_ycbcr_round_trip_and_grey_has_neutral_chroma():
    rgb = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5, rtol=0)
    grey = torch.full((1, 3, 2, 2), 0.25)
    torch.testing.assert_close(rgb_to_ycbcr(grey)[0, :, 0, 0], torch.tensor([0.25, 0.5, 0.5]))
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(luminance(red).flatten(), torch.tensor([0.299]))


def test_match_luminance_takes_content_mean_and_std():
    generator = torch.Generator().manual_seed(0)
    style_y = torch.rand(1, 1, 16, 16, generator=generator) * 0.2
    content_y = torch.rand(1, 1, 8, 8, generator=generator) * 0.5 + 0.25
    matched = match_luminance(style_y, content_y)
    torch.testing.assert_close(matched.mean(), content_y.mean(), atol=1e-5, rtol=0)
    torch.testing.assert_close(matched.std(), content_y.std(), atol=1e-5, rtol=0)


def test_with_chroma_of_keeps_content_chroma():
    content = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    new_y = torch.full((1, 1, 8, 8), 0.5)
    combined = rgb_to_ycbcr(with_chroma_of(new_y, content))
    torch.testing.assert_close(combined[:, 1:], rgb_to_ycbcr(content)[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(combined[:, :1], new_y, atol=1e-5, rtol=0)
