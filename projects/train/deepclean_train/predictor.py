"""The noise predictor: the module that is exported and cleans."""

import torch
from torch import nn

from deepclean_engine import (
    ChannelStandardScaler,
    StrainScaler,
    WitnessProducts,
)
from deepclean_engine.resampling import Decimator, Interpolator


def line_index(
    witnesses: list[str],
    line_witness: str | None,
    option: str = "product_witness",
) -> int | None:
    """Row of ``line_witness`` among ``witnesses`` (``None``: none).

    Args:
        witnesses: witness channel names, in input order.
        line_witness: the line witness (the mains monitor), or ``None``.
        option: the setting that named it, for the error message.

    Raises:
        ValueError: ``line_witness`` is not a witness.
    """
    if line_witness is None:
        return None
    if line_witness not in witnesses:
        raise ValueError(
            f"{option} {line_witness!r} is not among the witnesses "
            f"{witnesses}; name one of them (the mains monitor) or set it "
            "to null"
        )
    return witnesses.index(line_witness)


def num_inputs(witnesses: list[str], product_witness: str | None) -> int:
    """Network input channels: the witnesses, then their products."""
    count = len(witnesses)
    return count if product_witness is None else 2 * count - 1


class NoisePredictor(nn.Module):
    """Raw witnesses in, predicted coupled noise in strain units out.

    ``strain_scale * interpolate(network(features(decimate(x))))``:
    the exported model and the cleaning engine's noise model. The
    features are the standardised witnesses and, with ``line_index``,
    their products with that witness
    (:class:`~deepclean_engine.WitnessProducts`). The
    network runs at ``1 / factor`` of the data's sample rate between two
    linear-phase FIR filters (:mod:`deepclean_engine.resampling`): the
    coupled noise and the witness content that makes it lie far below
    the Nyquist frequency of 4096 Hz data (60 Hz mains and its
    sidebands, angular motion below 10 Hz), so decimating by 8 or 16
    cuts the network's multiply-adds per second of data as much and
    stretches its receptive field as far in seconds. Standardising after
    decimating touches ``factor`` times fewer samples (the decimator's
    gain at 0 Hz is 1, so the order does not matter away from the
    window edges) and matches training, which decimates whole spans.

    Args:
        network: maps standardised witnesses ``(batch, channels, time /
            factor)`` to scaled noise ``(batch, time / factor)``.
        num_channels: number of witness channels.
        factor: integer ratio of the data's sample rate to the
            network's (1: no resampling).
        line_index: row of the witness whose products with every other
            are extra network inputs; ``None`` for none.
    """

    def __init__(
        self,
        network: nn.Module,
        num_channels: int,
        factor: int = 1,
        line_index: int | None = None,
    ) -> None:
        super().__init__()
        self.factor = factor
        resampling = factor > 1
        self.decimator = Decimator(factor) if resampling else nn.Identity()
        self.witness_scaler = ChannelStandardScaler(num_channels)
        self.products = (
            nn.Identity()
            if line_index is None
            else WitnessProducts(num_channels, line_index)
        )
        self.network = network
        self.interpolator = (
            Interpolator(factor) if resampling else nn.Identity()
        )
        self.strain_scaler = StrainScaler()

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        """Predict noise.

        Args:
            witnesses: raw witnesses, ``(batch, channels, time)``.

        Returns:
            Predicted noise in strain units, ``(batch, time)``.
        """
        return self._from_decimated(self.decimator(witnesses))

    @torch.jit.export
    def forward_span(
        self, witnesses: torch.Tensor, kernel: int, stride: int
    ) -> torch.Tensor:
        """Predict the noise of every window of a span.

        The same as :meth:`forward` on the span's windows
        ``witnesses.unfold(-1, kernel, stride).transpose(0, 1)`` (up to
        float rounding), but the span is decimated once instead of window
        by window (:meth:`~deepclean_engine.resampling.Decimator.windows`)
        and no window is copied at the data's rate. Offline cleaning and
        validation call it through the cleaning engine.

        Args:
            witnesses: raw witnesses, ``(channels, time)``; windows start
                at samples ``0, stride, 2 * stride, ...``.
            kernel: window length, samples.
            stride: samples between window starts.

        Returns:
            Predicted noise in strain units, ``(windows, kernel)``.
        """
        if hasattr(self.decimator, "windows"):
            decimated = self.decimator.windows(witnesses, kernel, stride)
        else:
            decimated = witnesses.unfold(-1, kernel, stride).transpose(0, 1)
        return self._from_decimated(decimated)

    def _from_decimated(self, witnesses: torch.Tensor) -> torch.Tensor:
        """Noise in strain units from witnesses at the network's rate.

        Args:
            witnesses: raw decimated witnesses, ``(batch, channels, time
                / factor)``.

        Returns:
            ``(batch, time)``.
        """
        scaled = self.interpolator(self.network(self.features(witnesses)))
        return self.strain_scaler(scaled, inverse=True)

    def features(self, witnesses: torch.Tensor) -> torch.Tensor:
        """The network's inputs from witnesses at the network's rate.

        Args:
            witnesses: raw witnesses, ``(batch, channels, time)``.

        Returns:
            Standardised witnesses, then their products with the line
            witness if any: ``(batch, features, time)``.
        """
        return self.products(self.witness_scaler(witnesses))
