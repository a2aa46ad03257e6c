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

* :class:`ModulatedCarrier`: the line witness through learned filters
  times learned pointwise functions of the smoothed witnesses, the form
  of power-line couplings (7,300 parameters for 23 witnesses).

:class:`Ensemble` averages independently initialised copies of any of
them.
"""

import copy
from collections.abc import Sequence

import torch
from torch import nn

from deepclean_train.predictor import line_index


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


def _fft_convolve(
    x: torch.Tensor, taps: torch.Tensor, sum_channels: bool
) -> torch.Tensor:
    """Each channel convolved with its own centred FIR filter.

    ``y[c, t] = sum_k taps[c, k] x[c, t + len // 2 - k]`` with zeros
    outside ``x``, the same as a depthwise ``Conv1d`` (with flipped taps)
    of ``len // 2`` zero padding, computed by FFT: oneDNN's CPU kernels
    for depthwise and single-output convolutions with long taps are
    several times slower, most of all their gradients.

    Args:
        x: ``(batch, channels, time)``.
        taps: ``(channels, len)``, ``len`` odd.
        sum_channels: sum the filtered channels.

    Returns:
        ``(batch, channels, time)``, or ``(batch, time)`` summed.
    """
    length, size = x.shape[-1], taps.shape[-1]
    # a multiple of 64 above the linear convolution's length: fast FFTs
    n = (length + size - 1 + 63) // 64 * 64
    spectrum = torch.fft.rfft(x, n) * torch.fft.rfft(taps, n)
    if sum_channels:
        spectrum = spectrum.sum(dim=1)
    filtered = torch.fft.irfft(spectrum, n)
    return filtered[..., size // 2 : size // 2 + length]


class _LowPassFilters(nn.Module):
    """A learned FIR filter per channel, started as a low-pass.

    Shape-preserving, ``(batch, channels, time)``; :meth:`reset_parameters`
    sets every channel's taps to a Hann-windowed sinc with cutoff
    ``cutoff`` times the sample rate and unit gain at 0 Hz.

    Args:
        channels: number of channels.
        taps: odd filter length, samples.
        cutoff: initial cutoff over the sample rate.
    """

    def __init__(self, channels: int, taps: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.weight = nn.Parameter(torch.empty(channels, taps))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        channels, taps = self.weight.shape
        offsets = torch.arange(taps, dtype=torch.float64) - taps // 2
        window = torch.hann_window(
            taps + 2, periodic=False, dtype=torch.float64
        )[1:-1]
        response = torch.sinc(2 * self.cutoff * offsets) * window
        with torch.no_grad():
            self.weight.copy_((response / response.sum()).expand(channels, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fft_convolve(x, self.weight, sum_channels=False)


class _SummedFilters(nn.Module):
    """Channels through their own learned FIR filters, then summed.

    ``(batch, channels, time)`` to ``(batch, time)``, plus a bias;
    initialised like a ``Conv1d(channels, 1, taps)``.

    Args:
        channels: number of channels.
        taps: odd filter length, samples.
    """

    def __init__(self, channels: int, taps: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, taps))
        self.bias = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = self.weight.numel() ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fft_convolve(x, self.weight, sum_channels=True) + self.bias


class ModulatedCarrier(nn.Module):
    """Line noise as filtered carriers times learned modulations.

    Power-line noise reaches strain as the line witness (the carrier)
    through a transfer function, and mixed with slow motions: ``sum_k
    (c_k * line)(t) m_k(w(t))`` with filters ``c_k`` and functions
    ``m_k`` of the witnesses at that instant, linear for a bilinear
    coupling (the model form of NonSENS-style subtraction) and anything
    else for a nonlinear one. This network has that form, and little
    else, so it needs few parameters and few examples:

    - every witness through its own learned low-pass FIR filter
      (``smoothing_taps``, started as a Hann-windowed sinc with cutoff
      ``smoothing_cutoff`` times the sample rate: the slow motions
      stay, their white sensor noise and the line go), then batch
      normalisation;
    - ``num_modulations`` modulations, each the sum of a linear map of
      the smoothed witnesses, the product of two more (products of
      motions need no ReLU approximation), a one-hidden-layer ReLU
      network of them all and one of each witness alone (``|motion|``
      and the like: a sum of functions of one witness each), all
      pointwise in time;
    - as many carriers, the line witness through learned FIR filters
      (``carrier_taps``; each gives its own phase and gain at the line);
      a constant modulation gives the linear coupling;
    - the products of carriers and modulations summed through learned
      FIR filters (``output_taps``; the transfer function after
      mixing).

    Receptive field ``output_taps + max(smoothing_taps, carrier_taps) -
    1`` samples (65 with the defaults: 0.25 s at 256 Hz). With 23
    witnesses and the defaults: 7,300 parameters.

    Args:
        num_channels: number of witness channels.
        carrier_channel: index of the line witness among them; ``None``
            until :func:`assign_carrier` sets it (``DeepCleanModel``
            does, from its ``line_witness``).
        num_modulations: carrier-modulation pairs.
        hidden_channels: width of the ReLU network of all the smoothed
            witnesses.
        hidden_per_channel: width of each witness's own ReLU network
            (``num_channels`` of them, summed into the modulations); 0
            for none. A sum of functions of one witness each is the form
            of rectified couplings (mains x ``|motion|``): on the
            simulated coupling families it cut one network's excess
            over ideal on the nonlinear family from 0.081 to 0.066 and
            on the bilinear one from 0.024 to 0.020 (two seeds each;
            a wider joint network did not help).
        smoothing_taps: odd length of the witnesses' filters, samples.
        smoothing_cutoff: their initial cutoff over the sample rate.
        carrier_taps: odd length of the carrier filters, samples.
        output_taps: odd length of the output filters, samples.
    """

    def __init__(
        self,
        num_channels: int,
        carrier_channel: int | None = None,
        num_modulations: int = 16,
        hidden_channels: int = 64,
        hidden_per_channel: int = 4,
        smoothing_taps: int = 33,
        smoothing_cutoff: float = 1 / 16,
        carrier_taps: int = 33,
        output_taps: int = 33,
    ) -> None:
        super().__init__()
        for taps in (smoothing_taps, carrier_taps, output_taps):
            _check_kernel_size(taps)
        if carrier_channel is not None and not (
            0 <= carrier_channel < num_channels
        ):
            raise ValueError(
                f"carrier_channel {carrier_channel} is not one of the "
                f"{num_channels} witness channels"
            )
        if hidden_per_channel < 0:
            raise ValueError(
                f"hidden_per_channel must be 0 (none) or positive, got "
                f"{hidden_per_channel}"
            )
        if not 0 < smoothing_cutoff < 0.5:
            raise ValueError(
                f"smoothing_cutoff {smoothing_cutoff} must lie between 0 "
                "and 0.5 (the Nyquist frequency over the sample rate)"
            )
        self.num_channels = num_channels
        self.carrier_channel = carrier_channel
        self.smoothing = _LowPassFilters(
            num_channels, smoothing_taps, smoothing_cutoff
        )
        self.norm = nn.BatchNorm1d(num_channels)
        self.linear_head = nn.Conv1d(num_channels, num_modulations, 1)
        self.left_head = nn.Conv1d(num_channels, num_modulations, 1)
        self.right_head = nn.Conv1d(num_channels, num_modulations, 1)
        self.relu_head = nn.Sequential(
            nn.Conv1d(num_channels, hidden_channels, 1),
            nn.ReLU(),
            nn.Conv1d(hidden_channels, num_modulations, 1),
        )
        self.channel_head = None
        if hidden_per_channel:
            hidden = num_channels * hidden_per_channel
            self.channel_head = nn.Sequential(
                nn.Conv1d(num_channels, hidden, 1, groups=num_channels),
                nn.ReLU(),
                nn.Conv1d(hidden, num_modulations, 1),
            )
        self.carriers = nn.Conv1d(
            1, num_modulations, carrier_taps, padding=carrier_taps // 2
        )
        self.output_filters = _SummedFilters(num_modulations, output_taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict noise.

        Args:
            x: standardised witnesses, ``(batch, channels, time)``.

        Returns:
            Predicted scaled noise, ``(batch, time)``.
        """
        _check_input(x, self.num_channels, 1)
        index = self.carrier_channel
        if index is None:
            raise ValueError(
                "ModulatedCarrier has no carrier channel: give "
                "carrier_channel or call assign_carrier"
            )
        carrier = x[:, index : index + 1]
        slow = self.norm(self.smoothing(x))
        modulations = (
            self.linear_head(slow)
            + self.left_head(slow) * self.right_head(slow)
            + self.relu_head(slow)
        )
        if self.channel_head is not None:
            modulations = modulations + self.channel_head(slow)
        mixed = self.carriers(carrier) * modulations
        return self.output_filters(mixed)


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


def assign_carrier(
    network: nn.Module, witnesses: Sequence[str], line_witness: str | None
) -> None:
    """Point every :class:`ModulatedCarrier` in ``network`` at the line.

    Sets the ``carrier_channel`` of those that have none to the index of
    ``line_witness`` among ``witnesses``; networks without a
    :class:`ModulatedCarrier` are left alone.

    Args:
        network: an architecture, or an :class:`Ensemble` of them.
        witnesses: witness channel names, in input order.
        line_witness: the problem's line witness (the mains monitor);
            ``None`` when none was named.

    Raises:
        ValueError: no line witness was named, or it is not among
            ``witnesses``, or a :class:`ModulatedCarrier` was given
            another carrier channel.
    """
    carriers = [
        module
        for module in network.modules()
        if isinstance(module, ModulatedCarrier)
    ]
    if not carriers:
        return
    if line_witness is None:
        raise ValueError(
            "ModulatedCarrier multiplies the line witness by learned "
            "modulations: name it with --model.line_witness CHANNEL (the "
            "Train task passes the problem's)"
        )
    index = line_index(list(witnesses), line_witness, "line_witness")
    for module in carriers:
        if module.carrier_channel not in (None, index):
            raise ValueError(
                f"ModulatedCarrier's carrier_channel "
                f"{module.carrier_channel} is "
                f"{witnesses[module.carrier_channel]!r}, not the line "
                f"witness {line_witness!r} (channel {index}); leave "
                "model.arch.init_args.carrier_channel unset"
            )
        module.carrier_channel = index


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
