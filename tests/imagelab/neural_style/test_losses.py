import torch

from imagelab.neural_style import content_loss, gram_matrix, style_loss, total_variation_loss


def test_gram_matrix_golden_values():
    features = torch.arange(12, dtype=torch.float32).reshape(1, 2, 2, 3)  # (B, C, H, W)
    # rows: [0..5] and [6..11]; dot products 55, 145, 451, normalised by C*H*W = 12
    expected = torch.tensor([[[55.0, 145.0], [145.0, 451.0]]]) / 12
    torch.testing.assert_close(gram_matrix(features), expected)


def test_gram_matrix_is_per_batch_element_and_size_independent():
    tile = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    tiled = tile.repeat(1, 1, 2, 2)  # same statistics, four times the positions
    torch.testing.assert_close(gram_matrix(tiled), gram_matrix(tile))
    batch = torch.cat([tile, 2 * tile])
    torch.testing.assert_close(gram_matrix(batch)[1], 4 * gram_matrix(tile)[0])


def test_content_and_style_losses_are_relative_errors():
    target = torch.rand(1, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    assert content_loss((target,), (target,)).item() == 0.0
    torch.testing.assert_close(content_loss((2 * target,), (target,)), torch.tensor(1.0))
    torch.testing.assert_close(content_loss((torch.zeros_like(target),), (target,)), torch.tensor(1.0))
    gram = gram_matrix(target)
    assert style_loss((target, target), (gram, gram)).item() == 0.0
    # sqrt(2) x features -> 2 x gram -> relative error 1 in one layer of two -> mean 0.5
    torch.testing.assert_close(style_loss((target, 2**0.5 * target), (gram, gram)), torch.tensor(0.5))


def test_total_variation_golden_value():
    image = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).expand(1, 3, 2, 2)
    # vertical diffs (1, 0), horizontal diffs (1, 0): mean squares 0.5 + 0.5
    torch.testing.assert_close(total_variation_loss(image), torch.tensor(1.0))
    assert total_variation_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0
