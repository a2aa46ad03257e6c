"""Networks that map witness windows to the noise they couple into strain.

Every architecture takes standardised witnesses of shape ``(batch,
channels, time)`` and returns the predicted (scaled, band-limited) strain
noise of shape ``(batch, time)``. ``time`` must be a multiple of
``2 ** len(down_channels)`` (the total downsampling factor).

* :class:`DeepCleanAutoencoder`: the reference-size DeepClean Conv1d
  autoencoder (four stride-2 down blocks, four transposed up blocks),
  with the last up block kept at ``up_channels[-1]`` channels and a linear
  output convolution, instead of squeezing through a ReLU into a single
  channel. Receptive field 193 samples (0.38 s at 512 Hz, 47 ms at
  4096 Hz).
* :class:`DilatedUNet`: the same down/up path with skip connections and
  a stack of dilated residual convolutions at the coarsest rate, which
  reaches a receptive field of 499 samples (0.97 s at 512 Hz) for about
  0.17 M parameters.

:class:`Ensemble` averages independently initialised copies of any of
them.
"""

import copy
from collections.abc import Sequence

import torch
from torch import nn


def _check_kernel_size(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd and positive so that convolutions keep "
            f"the length, got {kernel_size}"
        )


def _conv_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int
) -> nn.Sequential:
    """Conv1d -> BatchNorm -> ReLU; divides the length by ``stride``."""
    return nn.Sequential(
        nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
        ),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(),
    )


def _up_block(
    in_channels: int, out_channels: int, kernel_size: int
) -> nn.Sequential:
    """ConvTranspose1d (stride 2) -> BatchNorm -> ReLU; doubles length."""
    return nn.Sequential(
        nn.ConvTranspose1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=2,
            padding=kernel_size // 2,
            output_padding=1,
        ),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(),
    )


def _check_input(x: torch.Tensor, num_channels: int, factor: int) -> None:
    if x.ndim != 3 or x.shape[1] != num_channels:
        raise ValueError(
            f"expected witnesses of shape (batch, {num_channels}, time), "
            f"got {x.shape}"
        )
    if x.shape[-1] % factor:
        raise ValueError(
            f"window length {x.shape[-1]} samples is not a multiple of the "
            f"network's downsampling factor {factor}; choose kernel_length "
            "* sample_rate divisible by it"
        )


class DeepCleanAutoencoder(nn.Module):
    """Reference-size DeepClean Conv1d autoencoder.

    Input convolution ``channels -> channels`` (stride 1), down blocks of
    stride 2 through ``down_channels``, transposed up blocks through
    ``up_channels``, then a linear ``up_channels[-1] -> 1`` output
    convolution. With the defaults and 21 witnesses: 43,015 parameters.

    Args:
        num_channels: number of witness channels.
        down_channels: output channels of each stride-2 down block.
        up_channels: output channels of each stride-2 up block; as many
            as ``down_channels``.
        kernel_size: odd kernel size of every convolution, samples.
    """

    def __init__(
        self,
        num_channels: int,
        down_channels: Sequence[int] = (8, 16, 32, 64),
        up_channels: Sequence[int] = (32, 16, 8, 8),
        kernel_size: int = 7,
    ) -> None:
        super().__init__()
        _check_kernel_size(kernel_size)
        if len(up_channels) != len(down_channels):
            raise ValueError(
                f"up_channels {list(up_channels)} must have as many blocks "
                f"as down_channels {list(down_channels)}"
            )
        self.num_channels = num_channels
        self.downsampling = 2 ** len(down_channels)
        self.input_block = _conv_block(
            num_channels, num_channels, kernel_size, 1
        )
        widths = [num_channels, *down_channels]
        self.down = nn.Sequential(
            *(
                _conv_block(widths[i], widths[i + 1], kernel_size, 2)
                for i in range(len(down_channels))
            )
        )
        widths = [down_channels[-1], *up_channels]
        self.up = nn.Sequential(
            *(
                _up_block(widths[i], widths[i + 1], kernel_size)
                for i in range(len(up_channels))
            )
        )
        self.output_conv = nn.Conv1d(
            up_channels[-1], 1, kernel_size, padding=kernel_size // 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict noise.

        Args:
            x: standardised witnesses, ``(batch, channels, time)``.

        Returns:
            Predicted scaled noise, ``(batch, time)``.
        """
        _check_input(x, self.num_channels, self.downsampling)
        hidden = self.up(self.down(self.input_block(x)))
        return self.output_conv(hidden)[:, 0]


class _DilatedResidual(nn.Module):
    """``x + Conv(ReLU(BN(DilatedConv(x))))`` at constant length."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(
                channels,
                channels,
                kernel_size,
                dilation=dilation,
                padding=dilation * (kernel_size // 2),
            ),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DilatedUNet(nn.Module):
    """U-Net with skip connections and a dilated bottleneck.

    Down blocks of stride 2 through ``down_channels``; at the coarsest
    rate (``sample_rate / 2 ** len(down_channels)``) a stack of residual
    convolutions with dilations ``dilations`` widens the receptive field
    by ``2 ** len(down_channels) * sum(dilations) *
    (bottleneck_kernel_size - 1)`` samples; up blocks add the features
    of the matching down block before upsampling further. A linear
    ``down_channels[0] -> 1`` convolution gives the output. With the
    defaults (16x downsampling, dilations 1, 2, 4, 8, kernel 3) the
    receptive field is 499 samples (0.97 s at 512 Hz); with 21 witnesses
    the network has 166,753 parameters and costs about 2.6 times the
    multiply-adds per sample of :class:`DeepCleanAutoencoder`.

    Args:
        num_channels: number of witness channels.
        down_channels: output channels of each stride-2 down block.
        dilations: dilation of each residual block in the bottleneck.
        kernel_size: odd kernel size of the down/up convolutions.
        bottleneck_kernel_size: odd kernel size of the dilated blocks.
    """

    def __init__(
        self,
        num_channels: int,
        down_channels: Sequence[int] = (16, 32, 64, 64),
        dilations: Sequence[int] = (1, 2, 4, 8),
        kernel_size: int = 7,
        bottleneck_kernel_size: int = 3,
    ) -> None:
        super().__init__()
        _check_kernel_size(kernel_size)
        _check_kernel_size(bottleneck_kernel_size)
        self.num_channels = num_channels
        self.downsampling = 2 ** len(down_channels)
        self.input_block = _conv_block(
            num_channels, down_channels[0], kernel_size, 1
        )
        widths = [down_channels[0], *down_channels]
        self.down = nn.ModuleList(
            _conv_block(widths[i], widths[i + 1], kernel_size, 2)
            for i in range(len(down_channels))
        )
        self.bottleneck = nn.Sequential(
            *(
                _DilatedResidual(
                    down_channels[-1], bottleneck_kernel_size, dilation
                )
                for dilation in dilations
            )
        )
        self.up = nn.ModuleList(
            _up_block(widths[i + 1], widths[i], kernel_size)
            for i in reversed(range(len(down_channels)))
        )
        self.output_conv = nn.Conv1d(
            down_channels[0], 1, kernel_size, padding=kernel_size // 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict noise.

        Args:
            x: standardised witnesses, ``(batch, channels, time)``.

        Returns:
            Predicted scaled noise, ``(batch, time)``.
        """
        _check_input(x, self.num_channels, self.downsampling)
        hidden = self.input_block(x)
        skips = []
        for block in self.down:
            skips.append(hidden)
            hidden = block(hidden)
        hidden = self.bottleneck(hidden)
        for index, block in enumerate(self.up):
            hidden = block(hidden) + skips[-1 - index]
        return self.output_conv(hidden)[:, 0]


class Ensemble(nn.Module):
    """The mean prediction of independently initialised copies of a network.

    Members share the architecture and the training batches but start
    from different random weights, so their errors are partly
    independent and the mean has less of them: on the simulated detector
    two fits of the same config that differ only in their seed differ by
    as much as their distance from the ideal. Training fits every member
    to the target on its own (:meth:`members_forward`); cleaning uses the
    mean (:meth:`forward`). Costs ``size`` times the compute of one.

    Args:
        network: the first member; the others are deep copies with every
            parameter re-drawn (``reset_parameters``).
        size: number of members, at least 2.
    """

    def __init__(self, network: nn.Module, size: int) -> None:
        super().__init__()
        if size < 2:
            raise ValueError(
                f"an ensemble needs at least 2 members, got {size}; use the "
                "network itself for 1"
            )
        members = [network]
        for _ in range(size - 1):
            member = copy.deepcopy(network)
            for module in member.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            members.append(member)
        self.members = nn.ModuleList(members)

    def members_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's prediction.

        Args:
            x: standardised witnesses, ``(batch, channels, time)``.

        Returns:
            ``(members, batch, time)``.
        """
        predictions = []
        for member in self.members:
            predictions.append(member(x))
        return torch.stack(predictions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' mean prediction, ``(batch, time)``."""
        return self.members_forward(x).mean(dim=0)


def architecture_name(network: nn.Module) -> str:
    """The network's class, ``"DeepCleanAutoencoder x 3"`` for an
    ensemble of three."""
    if isinstance(network, Ensemble):
        member = type(network.members[0]).__name__
        return f"{member} x {len(network.members)}"
    return type(network).__name__


def receptive_field(
    network: nn.Module, num_channels: int, num_samples: int
) -> int:
    """Span of input samples that influence one output sample.

    Measured as the extent of the gradient of the central output sample
    with respect to a random input, with the network in eval mode (batch
    statistics would couple every sample). Gradients below ``1e-6`` of
    the largest are rounding (FFT filtering spreads it over the whole
    input) or the far tails of the resampling filters, and are ignored.

    Args:
        network: maps ``(1, num_channels, num_samples)`` to
            ``(1, num_samples)``.
        num_channels: witness channels.
        num_samples: input length, samples; longer than the receptive
            field for a meaningful answer.

    Returns:
        Receptive field in samples.
    """
    was_training = network.training
    network.eval()
    try:
        x = torch.randn(1, num_channels, num_samples, requires_grad=True)
        network(x)[0, num_samples // 2].backward()
    finally:
        network.train(was_training)
    influence = x.grad.abs().sum(dim=(0, 1))
    (significant,) = torch.nonzero(
        influence > 1e-6 * influence.max(), as_tuple=True
    )
    return int(significant[-1] - significant[0] + 1)
