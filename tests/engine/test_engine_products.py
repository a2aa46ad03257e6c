"""Witness products (deepclean_engine.WitnessProducts)."""

import pytest
import torch

from deepclean_engine import WitnessProducts


def test_appends_the_line_witness_times_every_other() -> None:
    x = torch.randn(2, 4, 16)
    products = WitnessProducts(4, line_index=2)
    out = products(x)
    assert out.shape == (2, products.num_outputs, 16) == (2, 7, 16)
    torch.testing.assert_close(out[:, :4], x)
    for column, other in enumerate((0, 1, 3), start=4):
        torch.testing.assert_close(out[:, column], x[:, 2] * x[:, other])


def test_is_scripted_and_keeps_its_rows() -> None:
    scripted = torch.jit.script(WitnessProducts(3, line_index=0))
    x = torch.randn(1, 3, 8)
    torch.testing.assert_close(scripted(x)[:, 3], x[:, 0] * x[:, 1])
    assert scripted.others.tolist() == [1, 2]


@pytest.mark.parametrize(("channels", "index"), [(3, 3), (3, -1), (1, 0)])
def test_refuses_a_line_index_outside_the_witnesses(channels, index) -> None:
    with pytest.raises(ValueError, match="must be the row of one of"):
        WitnessProducts(channels, index)
