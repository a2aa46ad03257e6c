"""Validation plots: ASD of raw and cleaned strain around the bands.

Each validation epoch the cleaned validation span is cut into chunks of
``chunk_length`` s; the median-Welch ASD of each chunk (the engine's
:class:`~deepclean_engine.SpectralDensity`) gives, per frequency, the
5th/50th/95th percentiles over chunks of the raw and cleaned ASD and of
their ratio. A bokeh page with both panels is saved as
``{default_root_dir}/plots/validation-epoch{NNN}.html`` and, when a
W&B logger is attached, logged to W&B as HTML.
"""

from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import BoxAnnotation, ColumnDataSource
from bokeh.plotting import figure
from bokeh.resources import CDN
from lightning.pytorch.loggers import WandbLogger

from deepclean_engine import CleanedSegment, SpectralDensity
from deepclean_engine.config import whole_samples

PERCENTILES = (5.0, 50.0, 95.0)


@dataclass(frozen=True)
class ValidationSpectra:
    """Percentiles over chunks of the raw and cleaned ASD.

    Attributes:
        frequencies: Hz, ``(freq,)``.
        raw: raw-strain ASD percentiles, 1/sqrt(Hz), ``(3, freq)``.
        cleaned: cleaned-strain ASD percentiles, ``(3, freq)``.
        ratio: percentiles of cleaned/raw ASD per chunk, ``(3, freq)``.
    """

    frequencies: np.ndarray
    raw: np.ndarray
    cleaned: np.ndarray
    ratio: np.ndarray


def validation_spectra(
    segment: CleanedSegment,
    fftlength: float,
    chunk_length: float,
    frequency_range: tuple[float, float],
) -> ValidationSpectra:
    """ASD percentiles over chunks of a cleaned segment.

    Args:
        segment: engine output for the validation span.
        fftlength: Welch segment length, s.
        chunk_length: chunk length, s (at least ``fftlength``); the
            segment is cut into as many whole chunks as fit.
        frequency_range: ``(low, high)`` Hz of the bins kept.

    Returns:
        The percentiles (5, 50, 95) over chunks, float64 numpy arrays.
    """
    sample_rate = segment.sample_rate
    chunk = whole_samples("chunk_length", chunk_length, sample_rate)
    num_chunks = segment.raw.shape[-1] // chunk
    if num_chunks < 1:
        raise ValueError(
            f"the cleaned span ({segment.duration} s) is shorter than one "
            f"plot chunk ({chunk_length} s); lower chunk_length"
        )
    density = SpectralDensity(sample_rate, fftlength).to(segment.raw.device)
    frequencies = density.frequencies
    keep = (frequencies >= frequency_range[0]) & (
        frequencies <= frequency_range[1]
    )

    def chunk_asd(series: torch.Tensor) -> torch.Tensor:
        chunks = series[: num_chunks * chunk].reshape(num_chunks, chunk)
        return density(chunks)[:, keep].sqrt()

    raw, cleaned = chunk_asd(segment.raw), chunk_asd(segment.cleaned)
    levels = torch.tensor(PERCENTILES, dtype=raw.dtype, device=raw.device)

    def percentiles(values: torch.Tensor) -> np.ndarray:
        return torch.quantile(values, levels / 100, dim=0).cpu().numpy()

    return ValidationSpectra(
        frequencies=frequencies[keep].cpu().numpy(),
        raw=percentiles(raw),
        cleaned=percentiles(cleaned),
        ratio=percentiles(cleaned / raw),
    )


def validation_page(
    spectra: ValidationSpectra,
    bands: list[tuple[float, float]],
    title: str,
) -> str:
    """Standalone HTML with the ASD panel and the ASD-ratio panel."""
    asd = figure(
        title=title,
        y_axis_type="log",
        x_axis_label="Frequency [Hz]",
        y_axis_label="ASD [1/sqrt(Hz)]",
        width=800,
        height=400,
    )
    ratio = figure(
        x_range=asd.x_range,
        x_axis_label="Frequency [Hz]",
        y_axis_label="ASD cleaned / raw",
        width=800,
        height=250,
    )
    for name, values, colour in (
        ("raw", spectra.raw, "#1f77b4"),
        ("cleaned", spectra.cleaned, "#d62728"),
    ):
        source = ColumnDataSource(
            {
                "frequency": spectra.frequencies,
                "low": values[0],
                "median": values[1],
                "high": values[2],
            }
        )
        asd.varea(
            "frequency", "low", "high", source=source, color=colour, alpha=0.2
        )
        asd.line(
            "frequency",
            "median",
            source=source,
            color=colour,
            legend_label=f"{name} (median, 5-95 %)",
        )
    source = ColumnDataSource(
        {
            "frequency": spectra.frequencies,
            "low": spectra.ratio[0],
            "median": spectra.ratio[1],
            "high": spectra.ratio[2],
        }
    )
    ratio.varea(
        "frequency", "low", "high", source=source, color="black", alpha=0.2
    )
    ratio.line("frequency", "median", source=source, color="black")
    for low, high in bands:
        for panel in (asd, ratio):
            panel.add_layout(
                BoxAnnotation(
                    left=low, right=high, fill_alpha=0.05, fill_color="green"
                )
            )
    return file_html(column(asd, ratio), CDN, title)


class ValidationPlotter(pl.Callback):
    """Save (and log to W&B) the validation spectra every epoch.

    Reads ``pl_module.validation_segment``, the engine output of the last
    validation step. Runs on rank 0 only, not during the sanity check.

    Args:
        chunk_length: chunk length for the percentiles, s.
        frequency_margin: Hz shown on either side of the bands.
    """

    def __init__(
        self, chunk_length: float = 8.0, frequency_margin: float = 20.0
    ) -> None:
        self.chunk_length = chunk_length
        self.frequency_margin = frequency_margin

    def on_validation_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        """Plot the epoch's validation spectra."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        bands = [tuple(band) for band in pl_module.cleaning_config.bands]
        margin = self.frequency_margin
        spectra = validation_spectra(
            pl_module.validation_segment,
            pl_module.hparams.valid_fftlength,
            self.chunk_length,
            (bands[0][0] - margin, bands[-1][1] + margin),
        )
        epoch = trainer.current_epoch
        page = validation_page(
            spectra, bands, f"Validation spectra, epoch {epoch}"
        )
        folder = Path(trainer.default_root_dir) / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"validation-epoch{epoch:03d}.html").write_text(page)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log(
                    {
                        "validation_spectra": wandb.Html(page, inject=False),
                        "trainer/global_step": trainer.global_step,
                    }
                )
