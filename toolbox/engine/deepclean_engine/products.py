"""Witness products: bilinear couplings made linear in the inputs."""

import torch


class WitnessProducts(torch.nn.Module):
    """Append the product of one witness with every other as channels.

    A bilinear coupling (the mains line mixed with slow angular motion,
    sidebands at ``f_line +/- f_motion``) is a product of two witnesses;
    given the products, a network only has to filter them linearly, as it
    filters the witnesses themselves. Applied to standardised witnesses,
    the products of independent channels have unit variance too.

    Args:
        num_channels: number of witness channels.
        line_index: row of the witness (the mains monitor) that multiplies
            every other.

    Buffers:
        others: int64, shape ``(channels - 1,)``: the rows multiplied.
    """

    def __init__(self, num_channels: int, line_index: int) -> None:
        super().__init__()
        if not 0 <= line_index < num_channels or num_channels < 2:
            raise ValueError(
                f"line_index {line_index} must be the row of one of "
                f"{num_channels} witnesses, with at least one other"
            )
        self.num_channels = num_channels
        self.line_index = line_index
        others = [row for row in range(num_channels) if row != line_index]
        self.register_buffer("others", torch.tensor(others))

    @property
    def num_outputs(self) -> int:
        """Channels out: the witnesses, then their products."""
        return 2 * self.num_channels - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Witnesses followed by the products.

        Args:
            x: witnesses, ``(batch, channels, time)``.

        Returns:
            ``(batch, 2 * channels - 1, time)``: ``x``, then
            ``x[:, line] * x[:, other]`` for every other row in order.
        """
        line = x[:, self.line_index : self.line_index + 1]
        return torch.cat([x, line * x.index_select(1, self.others)], dim=1)
