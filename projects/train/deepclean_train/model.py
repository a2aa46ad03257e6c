"""The DeepClean LightningModule: training loss, engine validation, export.

Training minimises the in-band ASD ratio of the residual between the
band-passed, scaled strain and the network's prediction (float64 Welch,
optionally mixed with MSE). Validation cleans the whole validation span
with the shared :class:`~deepclean_engine.CleaningEngine`, exactly as
production does, and logs the in-band ASD ratio of cleaned to raw strain
as ``val_asdr`` (lower is better).
"""

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from deepclean_engine import (
    ASDRatioLoss,
    CleanedSegment,
    CleaningConfig,
    CleaningEngine,
    asd_ratio,
)
from deepclean_engine.config import EdgeHandling
from deepclean_engine.resampling import passband_edge, resampling_factor
from deepclean_train.architectures import Ensemble, assign_carrier
from deepclean_train.data import Band, DeepCleanDataModule, Span
from deepclean_train.export import load_pretrained_network
from deepclean_train.predictor import NoisePredictor, line_index


def network_rate_options(
    sample_rate: float, lowest: float, count: int = 3
) -> list[float]:
    """The cheapest network rates below ``sample_rate`` of at least
    ``lowest`` Hz: ``sample_rate`` divided by the largest integer that
    works, then by powers of two."""
    largest = int(sample_rate // lowest)
    factors = [largest] if largest >= 2 else []
    power = 2 ** (largest.bit_length() - 1)
    while power >= 2 and len(factors) < count:
        if power not in factors:
            factors.append(power)
        power //= 2
    return [sample_rate / factor for factor in factors]


def _network_factor(
    sample_rate: float,
    network_sample_rate: float | None,
    bands: list[Band],
) -> int:
    """Decimation factor in front of the architecture (1: none)."""
    if network_sample_rate is None:
        return 1
    factor = resampling_factor(sample_rate, network_sample_rate)
    if factor == 1:
        return 1
    edge = passband_edge(network_sample_rate)
    highest = max(high for _, high in bands)
    if highest > edge:
        needed = highest / edge * network_sample_rate
        options = [
            f"{rate:g}" for rate in network_rate_options(sample_rate, needed)
        ]
        choices = f"{', '.join(options)} Hz or null" if options else "null"
        raise ValueError(
            f"the band edge {highest:g} Hz lies above {edge:g} Hz, the "
            "highest frequency a network at network_sample_rate "
            f"{network_sample_rate:g} Hz sees; set data.network_sample_rate "
            f"to {choices} (rates of at least {needed:g} Hz that divide "
            f"{sample_rate:g} Hz; null runs the network at the data's rate)"
        )
    return factor


class DeepCleanModel(pl.LightningModule):
    """Train a noise predictor and validate it with the cleaning engine.

    ``sample_rate``, ``bands``, ``kernel_length``, ``filter_order``,
    ``strain_channel`` and ``witnesses`` are linked from the data module
    by the CLI, and so are ``network_sample_rate`` and
    ``product_witness``; the architecture's ``num_channels`` is the
    number of network inputs (:func:`num_inputs`).

    Args:
        arch: network mapping ``(batch, channels, time)`` standardised
            witnesses to ``(batch, time)`` scaled noise.
        strain_channel: strain channel name.
        witnesses: witness channel names, in input order.
        sample_rate: Hz.
        bands: ``(low, high)`` cleaning bands, Hz.
        kernel_length: window length, s.
        filter_order: Butterworth order per band.
        learning_rate: peak learning rate of the one-cycle schedule.
        weight_decay: Adam weight decay.
        pct_start: fraction of the steps spent raising the learning rate.
        fftlength: Welch segment length of the loss, s (<= kernel_length).
        alpha: weight of the ASD-ratio loss; ``1 - alpha`` weighs MSE.
        pooled_loss: take the loss's ASD ratio of the batch's summed
            PSDs, so that loud windows weigh more, as in the PSD of a
            long span (see :class:`~deepclean_engine.ASDRatioLoss`);
            ``False`` averages every window's ratio.
        valid_fftlength: Welch segment length of ``val_asdr``, s.
        inference_sampling_rate: windows per second when cleaning, Hz.
        edge_handling: ``"edge_pad"`` or ``"overlap_add"`` (see
            :class:`~deepclean_engine.CleaningConfig`).
        keep_offset: ``"edge_pad"`` only: start of the kept part of each
            prediction, s into the kernel; ``None`` keeps the centre.
        frame_length: length of the band-passed frames, s.
        filter_pad: band-pass padding per side, s; ``None`` derives it
            from the bands.
        network_sample_rate: rate the architecture runs at, Hz:
            ``sample_rate`` divided by an integer, with every band below
            the resampling filters' pass-band edge (0.375 times this
            rate); ``None`` runs it at ``sample_rate``.
        valid_batch_size: windows per model call when cleaning.
        product_witness: witness (the mains monitor) whose products with
            every other witness are extra network inputs; ``None`` for
            none.
        line_witness: the problem's line witness (the mains monitor),
            the carrier of a
            :class:`~deepclean_train.architectures.ModulatedCarrier`;
            ``None`` for none.
        init_from: exported ``model.pt`` whose network weights initialise
            this model (fine-tuning); its channels must match. Not saved
            in checkpoints (their weights already include it).
        ensemble_size: train this many independently initialised copies
            of ``arch`` side by side and clean with their mean
            (:class:`~deepclean_train.architectures.Ensemble`); 1 for the
            network alone. Multiplies the training and cleaning compute.
    """

    def __init__(
        self,
        arch: nn.Module,
        strain_channel: str,
        witnesses: list[str],
        sample_rate: float,
        bands: list[Band],
        kernel_length: float,
        filter_order: int = 8,
        learning_rate: float = 1e-2,
        weight_decay: float = 0.0,
        pct_start: float = 0.33,
        fftlength: float = 0.5,
        alpha: float = 1.0,
        pooled_loss: bool = False,
        valid_fftlength: float = 2.0,
        inference_sampling_rate: float = 2.0,
        edge_handling: EdgeHandling = "edge_pad",
        keep_offset: float | None = None,
        frame_length: float = 1.0,
        filter_pad: float | None = None,
        network_sample_rate: float | None = None,
        valid_batch_size: int = 64,
        product_witness: str | None = None,
        line_witness: str | None = None,
        init_from: str | None = None,
        ensemble_size: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["arch", "init_from"])
        factor = _network_factor(sample_rate, network_sample_rate, bands)
        assign_carrier(arch, witnesses, line_witness)
        if ensemble_size > 1:
            arch = Ensemble(arch, ensemble_size)
        elif ensemble_size < 1:
            raise ValueError(
                f"ensemble_size must be at least 1, got {ensemble_size}"
            )
        self.predictor = NoisePredictor(
            arch,
            len(witnesses),
            factor,
            line_index(witnesses, product_witness),
        )
        self.cleaning_config = CleaningConfig(
            sample_rate=sample_rate,
            bands=tuple(tuple(band) for band in bands),
            kernel_length=kernel_length,
            inference_sampling_rate=inference_sampling_rate,
            edge_handling=edge_handling,
            keep_offset=keep_offset,
            frame_length=frame_length,
            filter_order=filter_order,
            filter_pad=filter_pad,
        )
        if fftlength > kernel_length:
            raise ValueError(
                f"the loss fftlength ({fftlength} s) is longer than the "
                f"kernel ({kernel_length} s); lower model.fftlength"
            )
        self.loss = ASDRatioLoss(
            sample_rate / factor,
            bands,
            fftlength,
            alpha=alpha,
            pooled=pooled_loss,
        )
        self.engine = CleaningEngine(
            self.predictor, self.cleaning_config, batch_size=valid_batch_size
        )
        if init_from is not None:
            load_pretrained_network(self, init_from)

    @property
    def network(self) -> nn.Module:
        """The architecture being trained (at the network's rate)."""
        return self.predictor.network

    def setup(self, stage: str) -> None:
        """Copy the scalers the data module fitted on the training span."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if isinstance(datamodule, DeepCleanDataModule):
            self.copy_scalers(datamodule)

    def copy_scalers(self, datamodule: DeepCleanDataModule) -> None:
        """Take the fitted witness and strain scalers of ``datamodule``."""
        if datamodule.witnesses != list(self.hparams.witnesses):
            raise ValueError(
                f"the data module's witnesses {datamodule.witnesses} differ "
                f"from the model's {list(self.hparams.witnesses)}"
            )
        predictor = self.predictor
        predictor.witness_scaler.load_state_dict(
            datamodule.witness_scaler.state_dict()
        )
        predictor.strain_scaler.load_state_dict(
            datamodule.strain_scaler.state_dict()
        )

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        """Predict noise in strain units.

        Args:
            witnesses: raw witnesses, ``(batch, channels, time)``.

        Returns:
            Predicted noise, ``(batch, time)``.
        """
        return self.predictor(witnesses)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        """Loss on windows of raw witnesses and scaled target strain.

        The data module serves both at the network's rate (decimated
        over the whole span with the network's decimator), so the step
        runs the architecture alone and the loss at that rate; the
        in-band ASD ratio is the same at either rate. An ensemble
        minimises the sum of its members' losses, so that each member
        fits the target on its own with the gradient it would get alone
        (Adam's weight decay is added to that gradient: with the mean,
        an ensemble of three would have three times the decay); it
        logs their mean.
        """
        witnesses, target = batch
        network = self.predictor.network
        features = self.predictor.features(witnesses)
        if isinstance(network, Ensemble):
            member_losses = torch.stack(
                [
                    self.loss(prediction, target)
                    for prediction in network.members_forward(features)
                ]
            )
            loss = member_losses.sum()
            mean_loss = member_losses.mean()
        else:
            loss = mean_loss = self.loss(network(features), target)
        self.log(
            "train_loss",
            mean_loss.float(),
            prog_bar=True,
            batch_size=witnesses.shape[0],
        )
        return loss

    def clean(self, span: Span) -> CleanedSegment:
        """Clean a span with the engine, as production would."""
        return self.engine.clean(span.strain, span.witnesses, span.t0)

    def asd_ratio(self, segment: CleanedSegment) -> torch.Tensor:
        """In-band ASD ratio of cleaned to raw strain (float64 scalar)."""
        return asd_ratio(
            segment.cleaned,
            segment.raw,
            self.hparams.sample_rate,
            self.hparams.bands,
            self.hparams.valid_fftlength,
        )

    def _evaluate(self, span: Span, name: str) -> CleanedSegment:
        segment = self.clean(span)
        self.log(
            name,
            self.asd_ratio(segment).float(),
            prog_bar=True,
            batch_size=1,
            sync_dist=True,
        )
        return segment

    def validation_step(self, span: Span, batch_idx: int) -> None:
        """Clean the validation span and log ``val_asdr``."""
        self.validation_segment = self._evaluate(span, "val_asdr")

    def test_step(self, span: Span, batch_idx: int) -> None:
        """Clean the test span and log ``test_asdr``."""
        self._evaluate(span, "test_asdr")

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam with a one-cycle learning rate stepped every batch.

        Adam updates all parameters in one multi-tensor call
        (``foreach``): on CPU, torch's default loops over the small
        tensors of these networks one by one, which cost a tenth of the
        reference model's step.
        """
        optimizer = torch.optim.Adam(
            self.network.parameters(),
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
            foreach=True,
        )
        total_steps = self.trainer.estimated_stepping_batches
        if total_steps == float("inf"):
            raise ValueError(
                "the one-cycle schedule needs a finite number of steps; "
                "set trainer.max_epochs or trainer.max_steps"
            )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.hparams.learning_rate,
            total_steps=int(total_steps),
            pct_start=self.hparams.pct_start,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
