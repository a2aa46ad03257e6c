"""Which witnesses does a model rely on? Saliency, coherence, ablation.

Three kinds of evidence per witness, each on every analysed span
(training and validation by default):

- saliency: the gradient of the log of the predicted noise's in-band
  power with respect to each witness input, times that witness's
  standard deviation (so the numbers compare channels of any unit), on
  evenly spaced model windows. Per window, a witness's share is the norm
  of its gradient over the sum of the norms of all witnesses; its
  spectrum (the gradient's Fourier amplitude) shows at which witness
  frequencies the model listens. Median and 5-95 % percentiles over
  windows;
- coherence of each witness with the strain in and around the bands,
  linear, and of the product of each witness with the line witness (the
  mains monitor): the bilinear diagnostic, which sees angular motion that
  modulates the line although the motion itself has no coherence with
  the strain. Summarised as the coherent fraction of the in-band strain
  power, ``sum_f C(f) P(f) / sum_f P(f)`` over the in-band bins;
- ablation (last span only): the in-band ASD ratio of cleaned to raw
  strain when the witness is replaced by its mean and when it is
  time-shifted, against the unmodified witnesses' ratio. The cleaning is
  the cleaning engine's (:class:`~deepclean_engine.CleaningEngine`), the
  code of validation, offline and online cleaning.

The ranking combines the last span's evidence: a witness's importance is
the mean over the kinds of its value divided by the largest value of that
kind (saliency share, ablation rise, and the larger of its linear and
bilinear coherent fractions), so it lies in [0, 1].

``deepclean-train analyze`` (:func:`analyze`) analyses an exported model
on any data files; ``deepclean-train fit`` runs the same analysis on its
own spans before it exports the model (``--analysis.enabled``). Both
write ``analysis.json`` (the ranking, last), ``analysis.h5`` (the
spectra) and ``analysis.html`` (the report) into their folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from deepclean_engine import CleaningEngine, Coherence, asd_ratio
from deepclean_engine.resampling import decimate_rows, passband_edge
from deepclean_engine.spectral import in_band_mask
from deepclean_train.data import Span

ANALYSIS_FOLDER = "analysis"
"""Folder of the analysis in a training run's output folder."""
ANALYSIS_JSON = "analysis.json"
ANALYSIS_H5 = "analysis.h5"
ANALYSIS_HTML = "analysis.html"
MIN_AVERAGES = 16
"""Fewest Welch segments a coherence estimate averages (its bias is
about one over this for uncorrelated series)."""
DEFAULT_FFTLENGTH = 4.0
"""Welch segment length of the coherence by default, s (0.25 Hz)."""
MIN_FFTLENGTH = 0.5
"""Shortest segment the default halves down to, s (2 Hz resolution)."""
PERCENTILES = (5.0, 50.0, 95.0)
EVIDENCE = ("saliency", "ablation", "coherence")


@dataclass
class AnalysisSettings:
    """How witnesses are analysed.

    Attributes:
        enabled: Run the analysis after training (``deepclean-train
            fit``); ignored by ``deepclean-train analyze``.
        windows: Model windows per span for the saliency, evenly spaced.
        fftlength: Welch segment length of the coherence and of the
            ablation's ASD ratios, s; the coherence resolves
            ``1 / fftlength`` Hz. None: :data:`DEFAULT_FFTLENGTH`, halved
            until a span holds :data:`MIN_AVERAGES` segments.
        margin: Hz either side of the bands where coherence is shown.
        ablation: Run the ablation (two cleanings per witness; the most
            expensive part).
        ablation_duration: Seconds at the end of the last span the
            ablation cleans; None: the whole span.
        shift: Time shift of the ablation's shifted copies, s (circular
            within the span); None: half the span.
        line_witness: The witness whose products with the others give the
            bilinear coherence; None: the model's product witness if it
            has one, else the witness with the largest in-band linear
            coherent fraction.
    """

    enabled: bool = True
    windows: int = 256
    fftlength: float | None = None
    margin: float = 10.0
    ablation: bool = True
    ablation_duration: float | None = 256.0
    shift: float | None = None
    line_witness: str | None = None

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise ValueError(f"windows must be >= 1, got {self.windows}")
        if self.fftlength is not None and not self.fftlength > 0:
            raise ValueError(f"fftlength must be > 0 s, got {self.fftlength}")
        if self.ablation_duration is not None and not (
            self.ablation_duration > 0
        ):
            raise ValueError(
                f"ablation_duration must be > 0 s, got "
                f"{self.ablation_duration}"
            )
        if self.shift is not None and not self.shift > 0:
            raise ValueError(f"shift must be > 0 s, got {self.shift}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0 Hz, got {self.margin}")

    def span_fftlength(self, duration: float) -> float:
        """The Welch segment length for a span of ``duration`` s.

        Raises:
            ValueError: ``fftlength`` was given and the span is too short
                for :data:`MIN_AVERAGES` segments of it.
        """
        fftlength = self.fftlength or DEFAULT_FFTLENGTH
        while (
            self.fftlength is None
            and fftlength > MIN_FFTLENGTH
            and duration < needed_duration(fftlength)
        ):
            fftlength /= 2
        if duration < needed_duration(fftlength):
            raise ValueError(
                f"coherence at {1 / fftlength:g} Hz resolution (fftlength "
                f"{fftlength:g} s) needs at least "
                f"{needed_duration(fftlength):g} s of data ({MIN_AVERAGES} "
                f"half-overlapping segments), but the span holds "
                f"{duration:g} s; analyse a longer span or lower the "
                "fftlength"
            )
        return fftlength


def needed_duration(fftlength: float) -> float:
    """Seconds of data that hold :data:`MIN_AVERAGES` half-overlapping
    segments of ``fftlength`` s."""
    return fftlength * (MIN_AVERAGES + 1) / 2


@dataclass(frozen=True)
class ModelInputs:
    """What the analysis needs to know about a model.

    Attributes:
        strain_channel: Strain channel it cleans.
        witnesses: Its witness channels, in input order.
        network_sample_rate: Rate its network runs at, Hz.
        product_witness: The witness whose products it takes, if any.
    """

    strain_channel: str
    witnesses: tuple[str, ...]
    network_sample_rate: float
    product_witness: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ModelInputs:
        """From an exported model's metadata."""
        return cls(
            metadata["strain_channel"],
            tuple(metadata["witnesses"]),
            float(metadata["network_sample_rate"]),
            metadata.get("product_witness"),
        )


@dataclass(frozen=True)
class Saliency:
    """Saliency of every witness over the windows of one span.

    Attributes:
        share: Percentiles (:data:`PERCENTILES`) over windows of each
            witness's share of the summed gradient norms, ``(3,
            channels)``.
        frequencies: Witness frequencies of the spectra, Hz, ``(freq,)``.
        spectrum: Percentiles over windows of each witness's gradient
            amplitude per frequency, in units of d log(in-band power) per
            standard deviation of the witness, ``(3, channels, freq)``.
        num_windows: Windows analysed.
    """

    share: np.ndarray
    frequencies: np.ndarray
    spectrum: np.ndarray
    num_windows: int


@dataclass(frozen=True)
class WitnessCoherence:
    """Coherence of every witness (and its product with the line witness)
    with the strain over one span.

    Attributes:
        frequencies: Hz, ``(freq,)``: the bands plus the margin.
        linear: Coherence of each witness, ``(channels, freq)``.
        bilinear: Coherence of each witness times the line witness,
            ``(channels, freq)``; NaN for the line witness itself.
        linear_fraction: In-band coherent fraction of the strain power,
            ``(channels,)``.
        bilinear_fraction: The same for the products, ``(channels,)``.
        line_witness: Row of the line witness.
        fftlength: Welch segment length, s.
        num_averages: Welch segments averaged.
    """

    frequencies: np.ndarray
    linear: np.ndarray
    bilinear: np.ndarray
    linear_fraction: np.ndarray
    bilinear_fraction: np.ndarray
    line_witness: int
    fftlength: float
    num_averages: int


@dataclass(frozen=True)
class Ablation:
    """In-band ASD ratios with each witness removed, over one span.

    Attributes:
        span: Name of the span.
        baseline: In-band ASD ratio of cleaned to raw strain with every
            witness as recorded.
        mean: The ratio with each witness replaced by its mean,
            ``(channels,)``.
        shifted: The ratio with each witness time-shifted, ``(channels,)``.
        shift: The shift, s.
    """

    span: str
    baseline: float
    mean: np.ndarray
    shifted: np.ndarray
    shift: float

    @property
    def rise(self) -> np.ndarray:
        """Mean rise of the ratio over both ablations, floored at 0."""
        return np.maximum(
            0.0, 0.5 * (self.mean + self.shifted) - self.baseline
        )


@dataclass(frozen=True)
class WitnessAnalysis:
    """Everything the analysis found, by span.

    Attributes:
        inputs: The model's channels and rates.
        bands: Cleaning bands, Hz.
        spans: GPS ``(start, end)`` of each analysed span, s.
        saliency: By span name.
        coherence: By span name.
        ablation: Of the last span; None when not run.
        settings: The settings used.
    """

    inputs: ModelInputs
    bands: tuple[tuple[float, float], ...]
    spans: dict[str, tuple[float, float]]
    saliency: dict[str, Saliency]
    coherence: dict[str, WitnessCoherence]
    ablation: Ablation | None
    settings: AnalysisSettings

    @property
    def ranked_span(self) -> str:
        """The span the ranking is computed on (the last one)."""
        return list(self.spans)[-1]

    @property
    def line_witness(self) -> str:
        """Name of the line witness of the bilinear coherence."""
        row = self.coherence[self.ranked_span].line_witness
        return self.inputs.witnesses[row]

    def evidence(self) -> dict[str, np.ndarray]:
        """Each kind of evidence per witness on :attr:`ranked_span`."""
        span = self.ranked_span
        coherence = self.coherence[span]
        evidence = {
            "saliency": self.saliency[span].share[1],
            "coherence": np.fmax(
                coherence.linear_fraction, coherence.bilinear_fraction
            ),
        }
        if self.ablation is not None:
            evidence["ablation"] = self.ablation.rise
        return evidence

    def normalised_evidence(self) -> dict[str, np.ndarray]:
        """Each kind of evidence over its largest value, in [0, 1]."""
        normalised = {}
        for kind, values in self.evidence().items():
            largest = float(np.max(values))
            normalised[kind] = (
                values / largest if largest > 0 else np.zeros_like(values)
            )
        return normalised

    def importance(self) -> np.ndarray:
        """Combined importance of each witness in [0, 1]: the mean of its
        :meth:`normalised_evidence`, ``(channels,)``."""
        return np.mean(list(self.normalised_evidence().values()), axis=0)

    def ranking(self) -> list[dict[str, Any]]:
        """Witnesses by decreasing importance, with every number."""
        importance = self.importance()
        evidence = self.evidence()
        ranks = {kind: _ranks(values) for kind, values in evidence.items()}
        order = np.argsort(-importance, kind="stable")
        entries = []
        for rank, row in enumerate(order, start=1):
            entry: dict[str, Any] = {
                "rank": rank,
                "channel": self.inputs.witnesses[row],
                "importance": float(importance[row]),
                "ranks": {kind: int(r[row]) for kind, r in ranks.items()},
                "saliency": {
                    span: _percentile_dict(result.share[:, row])
                    for span, result in self.saliency.items()
                },
                "linear_coherence": {
                    span: float(result.linear_fraction[row])
                    for span, result in self.coherence.items()
                },
                "bilinear_coherence": {
                    span: _finite_or_none(result.bilinear_fraction[row])
                    for span, result in self.coherence.items()
                },
            }
            if self.ablation is not None:
                entry["ablation"] = {
                    "mean": float(self.ablation.mean[row]),
                    "shifted": float(self.ablation.shifted[row]),
                    "rise": float(self.ablation.rise[row]),
                }
            entries.append(entry)
        return entries

    def summary(self) -> dict[str, Any]:
        """The JSON document of ``analysis.json``."""
        summary: dict[str, Any] = {
            "strain_channel": self.inputs.strain_channel,
            "witnesses": list(self.inputs.witnesses),
            "bands": [list(band) for band in self.bands],
            "spans": {name: list(span) for name, span in self.spans.items()},
            "ranked_span": self.ranked_span,
            "line_witness": self.line_witness,
            "settings": asdict(self.settings),
            "evidence": [kind for kind in EVIDENCE if kind in self.evidence()],
            "coherence_averages": {
                name: result.num_averages
                for name, result in self.coherence.items()
            },
            "ranking": self.ranking(),
        }
        if self.ablation is not None:
            summary["baseline_in_band_ratio"] = self.ablation.baseline
        return summary


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 for the largest value, 2 for the next, ..."""
    ranks = np.empty(len(values), dtype=int)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranks


def _percentile_dict(values: np.ndarray) -> dict[str, float]:
    low, median, high = (float(value) for value in values)
    return {"p5": low, "median": median, "p95": high}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def check_channels(
    inputs: ModelInputs, available: Sequence[str], source: str
) -> None:
    """Refuse data that lack the model's channels, naming them.

    Args:
        inputs: The model's channels.
        available: Channels the data hold.
        source: The data, as the message names them.
    """
    missing = [
        name
        for name in (inputs.strain_channel, *inputs.witnesses)
        if name not in set(available)
    ]
    if missing:
        raise ValueError(
            f"the model's channels {missing} are not in {source}; analyse "
            "the model on data recorded with its channels (it was trained "
            f"on {inputs.strain_channel} and {len(inputs.witnesses)} "
            "witnesses)"
        )


def window_saliency(
    model: torch.nn.Module,
    span: Span,
    kernel_size: int,
    sample_rate: float,
    bands: Sequence[Sequence[float]],
    num_windows: int,
    max_frequency: float,
    batch_size: int = 16,
) -> Saliency:
    """Saliency of every witness on evenly spaced windows of a span.

    Args:
        model: Raw witnesses ``(batch, channels, kernel)`` to predicted
            noise in strain units ``(batch, kernel)``.
        span: Strain and witnesses.
        kernel_size: Window length, samples.
        sample_rate: Hz.
        bands: Cleaning bands, Hz.
        num_windows: Windows to analyse (fewer if the span holds fewer).
        max_frequency: Highest witness frequency kept in the spectra, Hz.
        batch_size: Windows per gradient computation.

    Raises:
        ValueError: the span is shorter than one window.
    """
    witnesses = span.witnesses
    total = witnesses.shape[-1]
    if total < kernel_size:
        raise ValueError(
            f"the {span.name} span holds {total / sample_rate:g} s, shorter "
            f"than one model window ({kernel_size / sample_rate:g} s); "
            "analyse a longer span"
        )
    starts = torch.unique(
        torch.linspace(0, total - kernel_size, num_windows).round().long()
    )
    frequencies = torch.fft.rfftfreq(kernel_size, 1 / sample_rate)
    band = in_band_mask(frequencies, bands)
    kept = frequencies <= max_frequency
    window = torch.hann_window(kernel_size, periodic=True, dtype=torch.float64)
    scale = witnesses.std(dim=-1).clamp_min(torch.finfo(torch.float32).tiny)
    shares, spectra = [], []
    for first in range(0, len(starts), batch_size):
        batch = torch.stack(
            [
                witnesses[:, start : start + kernel_size]
                for start in starts[first : first + batch_size].tolist()
            ]
        ).requires_grad_(True)
        noise = model(batch).to(torch.float64)
        spectrum = torch.fft.rfft(noise * window)[:, band]
        log_power = (spectrum.real**2 + spectrum.imag**2).sum(dim=-1).log()
        (gradient,) = torch.autograd.grad(log_power.sum(), batch)
        gradient = gradient.to(torch.float64) * scale[:, None]
        norm = gradient.norm(dim=-1)
        shares.append(norm / norm.sum(dim=-1, keepdim=True))
        amplitude = torch.fft.rfft(gradient * window).abs()[..., kept]
        spectra.append(amplitude)
    share = torch.cat(shares).numpy()
    spectrum = torch.cat(spectra).numpy()
    return Saliency(
        share=np.nanpercentile(share, PERCENTILES, axis=0),
        frequencies=frequencies[kept].numpy(),
        spectrum=np.nanpercentile(spectrum, PERCENTILES, axis=0),
        num_windows=len(starts),
    )


def coherence_factor(sample_rate: float, highest_frequency: float) -> int:
    """Largest integer decimation whose pass band keeps
    ``highest_frequency``."""
    factor = 1
    while (
        sample_rate % (factor + 1) == 0
        and passband_edge(sample_rate / (factor + 1)) >= highest_frequency
    ):
        factor += 1
    return factor


def _decimated(series: torch.Tensor, factor: int) -> torch.Tensor:
    """Standardised (zero mean, unit variance) series decimated by
    ``factor``, row by row to bound memory; ``(..., time // factor)``."""
    series = series.to(torch.float32)
    series = series - series.mean(dim=-1, keepdim=True)
    series = series / series.std(dim=-1, keepdim=True).clamp_min(1e-30)
    return decimate_rows(series, factor)


def witness_coherence(
    span: Span,
    sample_rate: float,
    bands: Sequence[Sequence[float]],
    fftlength: float,
    margin: float,
    line_witness: int | None,
) -> WitnessCoherence:
    """Linear and bilinear coherence of the witnesses with the strain.

    Every series is standardised and decimated to the lowest rate whose
    pass band keeps the bands plus ``margin``; the products are formed
    before decimating.

    Args:
        span: Strain and witnesses.
        sample_rate: Hz.
        bands: Cleaning bands, Hz.
        fftlength: Welch segment length, s.
        margin: Hz either side of the bands.
        line_witness: Row of the line witness; None: the witness with
            the largest in-band linear coherent fraction.

    """
    low = max(min(b[0] for b in bands) - margin, 0.0)
    high = max(b[1] for b in bands) + margin
    factor = coherence_factor(sample_rate, high)
    rate = sample_rate / factor
    high = min(high, rate / 2)
    coherence = Coherence(rate, fftlength, bands=[(low, high)])
    strain = _decimated(span.strain, factor)
    density = coherence.density(strain)
    in_band = in_band_mask(coherence.frequencies, bands)
    weights = density * in_band
    weights = weights / weights.sum()

    witnesses = span.witnesses
    linear = coherence(_decimated(witnesses, factor), strain)
    linear_fraction = linear @ weights
    if line_witness is None:
        line_witness = int(linear_fraction.argmax())
    line = witnesses[line_witness].to(torch.float64)
    line = (line - line.mean()) / line.std()
    bilinear = torch.full_like(linear, torch.nan)
    for row in range(witnesses.shape[0]):
        if row == line_witness:
            continue
        other = witnesses[row].to(torch.float64)
        product = line * (other - other.mean())
        bilinear[row] = coherence(_decimated(product, factor)[None], strain)[0]
    return WitnessCoherence(
        frequencies=coherence.frequencies.numpy(),
        linear=linear.numpy(),
        bilinear=bilinear.numpy(),
        linear_fraction=linear_fraction.numpy(),
        bilinear_fraction=(bilinear @ weights).numpy(),
        line_witness=line_witness,
        fftlength=fftlength,
        num_averages=coherence.num_segments(strain.shape[-1]),
    )


class OneRowChanged:
    """An exported model for cleanings of one span that differ in one
    witness at a time.

    The exported :class:`~deepclean_train.predictor.NoisePredictor`
    decimates each witness on its own (a per-channel FIR), so the
    decimated windows of the recorded witnesses are kept from a first
    cleaning (:meth:`record`) and a later one with witness ``row``
    changed (:meth:`change`) decimates that witness only. The engine
    calls :meth:`forward_span` batch by batch in the same order for the
    same span, which is how the batches are matched. The result equals
    the model's own ``forward_span``.

    Args:
        model: An exported model with ``decimator.windows`` and
            ``_from_decimated`` (see :meth:`applies`).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.batches: list[torch.Tensor] = []
        self.row: int | None = None
        self.calls = 0

    @staticmethod
    def applies(model: object) -> bool:
        """Whether ``model`` decimates its witnesses one by one."""
        return hasattr(model, "_from_decimated") and hasattr(
            getattr(model, "decimator", None), "windows"
        )

    def record(self) -> None:
        """The next cleaning keeps the decimated windows of every batch."""
        self.batches, self.row, self.calls = [], None, 0

    def change(self, row: int) -> None:
        """The next cleaning differs from the recorded one in ``row``."""
        self.row, self.calls = row, 0

    def forward_span(
        self, witnesses: torch.Tensor, kernel: int, stride: int
    ) -> torch.Tensor:
        """The model's noise for every window of a batch's span,
        ``(channels, time)`` -> ``(windows, kernel)``."""
        decimator = self.model.decimator
        row = self.row
        if row is None:
            decimated = decimator.windows(witnesses, kernel, stride)
            self.batches.append(decimated)
            return self.model._from_decimated(decimated)
        decimated = self.batches[self.calls]
        self.calls += 1
        recorded = decimated[:, row].clone()
        decimated[:, row] = decimator.windows(
            witnesses[row : row + 1], kernel, stride
        )[:, 0]
        try:
            return self.model._from_decimated(decimated)
        finally:
            decimated[:, row] = recorded


def ablate(
    engine: CleaningEngine,
    span: Span,
    shift: float | None,
    fftlength: float,
    progress: bool = True,
) -> Ablation:
    """In-band ASD ratios with each witness replaced by its mean and by a
    time-shifted copy.

    An exported model cleans through :class:`OneRowChanged`, which
    decimates only the changed witness again (the same numbers, several
    times faster with many witnesses).

    Args:
        engine: Cleans the span (its model and configuration).
        span: Strain and witnesses.
        shift: Circular shift of the shifted copies, s; None: half the
            span.
        fftlength: Welch segment length of the ratios, s.
        progress: Show a progress bar over witnesses.

    Raises:
        ValueError: the span is too short to clean two ASD segments, or
            the shift is not shorter than the span.
    """
    config = engine.config
    rate = config.sample_rate
    total = span.strain.shape[-1]
    samples = total // 2 if shift is None else round(shift * rate)
    if not 0 < samples < total:
        raise ValueError(
            f"the ablation's shift {shift:g} s must be shorter than the "
            f"{span.name} span ({total / rate:g} s); lower the shift"
        )
    witnesses = span.witnesses.clone()
    model = engine.model
    cached = OneRowChanged(model) if OneRowChanged.applies(model) else None
    if cached is not None:
        engine = CleaningEngine(cached, config, engine.batch_size)
        cached.record()

    def ratio(row: int | None = None) -> float:
        if cached is not None and row is not None:
            cached.change(row)
        segment = engine.clean(span.strain, witnesses, span.t0)
        if segment.cleaned.shape[-1] < 2 * fftlength * rate:
            raise ValueError(
                f"the {span.name} span leaves {segment.duration:g} s of "
                f"cleaned strain, less than two {fftlength:g} s ASD "
                "segments; analyse a longer span"
            )
        return float(
            asd_ratio(
                segment.cleaned, segment.raw, rate, config.bands, fftlength
            )
        )

    baseline = ratio()
    mean, shifted = [], []
    for row in tqdm(
        range(witnesses.shape[0]),
        desc=f"ablation ({span.name})",
        unit="witness",
        disable=not progress,
    ):
        recorded = witnesses[row].clone()
        witnesses[row] = recorded.mean()
        mean.append(ratio(row))
        witnesses[row] = recorded.roll(samples)
        shifted.append(ratio(row))
        witnesses[row] = recorded
    return Ablation(
        span=span.name,
        baseline=baseline,
        mean=np.array(mean),
        shifted=np.array(shifted),
        shift=samples / rate,
    )


def span_tail(span: Span, duration: float | None, sample_rate: float) -> Span:
    """The last ``duration`` s of a span (all of it for None or more)."""
    total = span.strain.shape[-1]
    if duration is None or duration * sample_rate >= total:
        return span
    first = total - round(duration * sample_rate)
    return Span(
        span.name,
        span.t0 + first / sample_rate,
        span.strain[first:],
        span.witnesses[:, first:],
    )


def analyze_spans(
    engine: CleaningEngine,
    inputs: ModelInputs,
    spans: Mapping[str, Span],
    settings: AnalysisSettings,
    progress: bool = True,
) -> WitnessAnalysis:
    """Saliency and coherence on every span, ablation on the last.

    Args:
        engine: The model's cleaning engine (its model is differentiable:
            an exported TorchScript model or the trained predictor).
        inputs: The model's channels and rates.
        spans: Spans by name, in order; the last one is ranked.
        settings: How to analyse.
        progress: Show progress bars.

    Raises:
        ValueError: no spans, an unknown line witness, or spans too short
            for the settings.
    """
    if not spans:
        raise ValueError("no spans to analyse; give at least one span")
    config = engine.config
    witnesses = list(inputs.witnesses)
    line = settings.line_witness or inputs.product_witness
    if line is not None and line not in witnesses:
        raise ValueError(
            f"line witness {line!r} is not among the model's witnesses; "
            "name one of them (the mains monitor) or leave it unset"
        )
    line_row = None if line is None else witnesses.index(line)
    bands = [tuple(band) for band in config.bands]
    max_frequency = min(
        passband_edge(inputs.network_sample_rate),
        max(b[1] for b in bands) + settings.margin,
    )
    model = engine.model
    saliency, coherence = {}, {}
    for name, span in tqdm(
        spans.items(),
        desc="saliency and coherence",
        unit="span",
        disable=not progress,
    ):
        saliency[name] = window_saliency(
            model,
            span,
            config.kernel_size,
            config.sample_rate,
            bands,
            settings.windows,
            max_frequency,
        )
        duration = span.strain.shape[-1] / config.sample_rate
        try:
            fftlength = settings.span_fftlength(duration)
        except ValueError as error:
            raise ValueError(f"{name} span: {error}") from None
        coherence[name] = witness_coherence(
            span,
            config.sample_rate,
            bands,
            fftlength,
            settings.margin,
            line_row,
        )
        line_row = coherence[name].line_witness
    last = span_tail(
        list(spans.values())[-1],
        settings.ablation_duration,
        config.sample_rate,
    )
    ablation = (
        ablate(engine, last, settings.shift, fftlength, progress)
        if settings.ablation
        else None
    )
    return WitnessAnalysis(
        inputs=inputs,
        bands=tuple(bands),
        spans={
            name: (
                span.t0,
                span.t0 + span.strain.shape[-1] / config.sample_rate,
            )
            for name, span in spans.items()
        },
        saliency=saliency,
        coherence=coherence,
        ablation=ablation,
        settings=settings,
    )
