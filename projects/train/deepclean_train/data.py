"""Training, validation and test spans of one data file, on the device.

The data module reads a gwpy-layout HDF5 file, checks it against the
configuration, fits the witness and strain scalers on the training span
and serves:

- training batches: ``batch_size`` windows of ``kernel_length`` s at
  random offsets (1-sample stride) into the training span, gathered on
  the device the model is on from the whole span kept there as a tensor.
  When the network runs at a lower rate (``network_sample_rate``), the
  raw witnesses and the target are decimated to it once, over the whole
  span, with the filter the exported model applies to each window
  (:class:`~deepclean_engine.resampling.Decimator`), so training steps
  skip the resampling filters;
- validation and test spans: raw strain and witnesses of the span, on
  the device, for the cleaning engine.

Spans follow each other without overlap: training starts ``train_offset``
s after the file start, validation follows it, the test span follows
validation.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from deepclean_engine import (
    BandpassFilter,
    ChannelStandardScaler,
    StrainScaler,
    validate_bands,
)
from deepclean_engine.config import whole_samples
from deepclean_engine.resampling import decimate_rows, resampling_factor
from deepclean_io.hdf5 import (
    SUBTRACTED_ATTRIBUTE,
    SUBTRACTED_MODEL_ATTRIBUTE,
    ContiguousFiles,
    contiguous_files,
    strain_description,
)

Band = tuple[float, float]
SPAN_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Span:
    """Raw strain and witnesses of one contiguous span.

    Attributes:
        name: ``"train"``, ``"valid"`` or ``"test"``.
        t0: GPS time of the first sample, s.
        strain: raw strain, float64, ``(time,)``.
        witnesses: raw witnesses, float32, ``(channels, time)``.
    """

    name: str
    t0: float
    strain: torch.Tensor
    witnesses: torch.Tensor

    def to(self, device: torch.device) -> "Span":
        """Copy of the span on ``device``."""
        return Span(
            self.name,
            self.t0,
            self.strain.to(device),
            self.witnesses.to(device),
        )


def read_span(
    segment: ContiguousFiles,
    name: str,
    strain_channel: str,
    witnesses: Sequence[str],
    start: float,
    end: float,
    source: str,
    fix: str,
) -> Span:
    """Strain and witnesses over ``[start, end)`` of back-to-back files.

    Args:
        segment: The files.
        name: Name of the span.
        strain_channel: Strain channel.
        witnesses: Witness channels, in the order of the span's rows.
        start: GPS start, s.
        end: GPS end, s.
        source: The files, as a message names them.
        fix: What to do about NaN or inf samples, for the message.

    Raises:
        ValueError: a channel holds NaN or inf samples in the span (the
            message names it, its first bad GPS time and ``fix``).
    """
    data, t0, sample_rate = segment.read(
        [strain_channel, *witnesses], start, end
    )
    for channel, values in data.items():
        bad = ~np.isfinite(values)
        if bad.any():
            first = t0 + np.argmax(bad) / sample_rate
            raise ValueError(
                f"channel {channel!r} has {int(bad.sum())} NaN/inf "
                f"samples in the {name} span [{start}, {end}) of "
                f"{source}, the first at GPS {first}; {fix}"
            )
    strain = torch.from_numpy(np.asarray(data[strain_channel], np.float64))
    stacked = np.stack([data[w] for w in witnesses]).astype(np.float32)
    return Span(name, t0, strain, torch.from_numpy(stacked))


class DeepCleanDataModule(pl.LightningDataModule):
    """Windows of witnesses and band-passed strain from HDF5 files.

    Args:
        fname: gwpy-layout HDF5 file holding the strain and witnesses,
            or a list of back-to-back files of one segment (read as one
            series: spans may cross the files' boundaries).
        strain_channel: name of the strain channel.
        witnesses: witness channel names, in the order the model sees.
        sample_rate: expected sample rate of the file, Hz.
        bands: ``(low, high)`` cleaning bands, Hz.
        kernel_length: window length, s.
        train_duration: length of the training span, s.
        valid_duration: length of the validation span after it, s.
        test_duration: length of the test span after validation, s
            (0 for none).
        train_offset: start of the training span after the (first)
            file's start, s (to train or retrain on a later stretch).
        batch_size: windows per training batch.
        batches_per_epoch: training batches per epoch.
        filter_order: Butterworth order of the target band-pass.
        network_sample_rate: rate of the training windows, Hz:
            ``sample_rate`` divided by an integer; ``None`` for
            ``sample_rate``.
        product_witness: witness (the mains monitor) whose products with
            every other are extra network inputs; declared here with the
            channels and linked into the model, which checks it and
            computes the products (the windows served here are the raw
            witnesses either way); ``None`` for none.
    """

    def __init__(
        self,
        fname: list[str] | str,
        strain_channel: str,
        witnesses: list[str],
        sample_rate: float,
        bands: list[Band],
        kernel_length: float = 1.0,
        train_duration: float = 2048.0,
        valid_duration: float = 512.0,
        test_duration: float = 0.0,
        train_offset: float = 0.0,
        batch_size: int = 64,
        batches_per_epoch: int = 64,
        filter_order: int = 8,
        network_sample_rate: float | None = None,
        product_witness: str | None = None,
    ) -> None:
        super().__init__()
        if not witnesses:
            raise ValueError("witnesses is empty; list the witness channels")
        duplicates = sorted({w for w in witnesses if witnesses.count(w) > 1})
        if duplicates:
            raise ValueError(
                f"witness channels {duplicates} are listed more than once; "
                "list each channel once"
            )
        if strain_channel in witnesses:
            raise ValueError(
                f"the strain channel {strain_channel!r} is also listed as a "
                "witness; remove it from witnesses"
            )
        for name, value in (
            ("train_duration", train_duration),
            ("valid_duration", valid_duration),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 s, got {value}")
        if test_duration < 0 or train_offset < 0:
            raise ValueError(
                "test_duration and train_offset must be >= 0 s, got "
                f"{test_duration} and {train_offset}"
            )
        if batch_size < 1 or batches_per_epoch < 1:
            raise ValueError(
                "batch_size and batches_per_epoch must be >= 1, got "
                f"{batch_size} and {batches_per_epoch}"
            )
        self.fnames = [
            Path(path)
            for path in ([fname] if isinstance(fname, str) else fname)
        ]
        if not self.fnames:
            raise ValueError("fname is an empty list; give the data files")
        self.segment: ContiguousFiles | None = None
        # what the files' strain already has subtracted (a classical
        # stage's residual files), known once the files are checked
        self.subtracted: str | None = None
        # that method's fitted model file, named by the files
        self.classical_model: Path | None = None
        self.strain_channel = strain_channel
        self.witnesses = list(witnesses)
        self.sample_rate = float(sample_rate)
        self.bands = validate_bands(bands, sample_rate)
        self.kernel_length = kernel_length
        self.kernel_size = whole_samples(
            "kernel_length", kernel_length, sample_rate
        )
        self.factor = (
            1
            if network_sample_rate is None
            else resampling_factor(sample_rate, network_sample_rate)
        )
        if self.kernel_size % self.factor:
            raise ValueError(
                f"kernel_length {kernel_length} s is {self.kernel_size} "
                f"samples, not a multiple of the decimation factor "
                f"{self.factor} to network_sample_rate "
                f"{network_sample_rate} Hz; choose a kernel_length that is"
                " a whole number of samples at the network's rate"
            )
        self.network_sample_rate = self.sample_rate / self.factor
        self.durations = {
            "train": train_duration,
            "valid": valid_duration,
            "test": test_duration,
        }
        for name, duration in self.durations.items():
            whole_samples(f"{name}_duration", duration, sample_rate)
        self.train_offset = train_offset
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.witness_scaler = ChannelStandardScaler(len(witnesses))
        self.strain_scaler = StrainScaler()
        self.bandpass = BandpassFilter(self.bands, sample_rate, filter_order)
        self.spans: dict[str, Span] = {}
        self.bounds: dict[str, tuple[float, float]] = {}
        self.train_witnesses = torch.empty(0)
        self.target = torch.empty(0)
        self._on_device: dict[str, Span] = {}
        self._windows_on_device: tuple[torch.Tensor, torch.Tensor] | None
        self._windows_on_device = None
        self._generator: torch.Generator | None = None

    @property
    def channels(self) -> list[str]:
        """Strain channel followed by the witnesses."""
        return [self.strain_channel, *self.witnesses]

    @property
    def train_span(self) -> tuple[float, float]:
        """GPS ``(start, end)`` of the training span, s (after setup)."""
        if "train" not in self.bounds:
            raise RuntimeError("call setup() before asking for the spans")
        return self.bounds["train"]

    @property
    def valid_span(self) -> tuple[float, float] | None:
        """GPS ``(start, end)`` of the validation span, s (after setup)."""
        return self.bounds.get("valid")

    def span_bounds(self, t0: float) -> dict[str, tuple[float, float]]:
        """GPS ``(start, end)`` of each non-empty span, s.

        Args:
            t0: GPS start of the file, s.
        """
        bounds = {}
        start = t0 + self.train_offset
        for name in SPAN_NAMES:
            end = start + self.durations[name]
            if end > start:
                bounds[name] = (start, end)
            start = end
        return bounds

    def _source(self) -> str:
        """The data files, as messages name them."""
        if len(self.fnames) == 1:
            return str(self.fnames[0])
        first, last = self.fnames[0], self.fnames[-1]
        return f"{first} ... {last} ({len(self.fnames)} files)"

    def _check_file(self) -> dict[str, tuple[float, float]]:
        """Refuse files that lack channels, time or the sample rate, or
        that are not one segment."""
        for path in self.fnames:
            if not path.is_file():
                raise FileNotFoundError(
                    f"data file {path} does not exist; pass existing HDF5 "
                    "files as data.fname"
                )
        segments = contiguous_files(self.fnames)
        if len(segments) > 1:
            raise ValueError(
                f"data.fname lists files of {len(segments)} segments (a gap "
                f"after {segments[0].files[-1]}); pass back-to-back files "
                "of one segment"
            )
        segment = self.segment = segments[0]
        for path, info in zip(segment.files, segment.infos, strict=True):
            missing = [c for c in self.channels if c not in info.channels]
            if missing:
                raise ValueError(
                    f"channels {missing} are not in {path}; it holds "
                    f"{sorted(info.channels)}. Fix the channel names or "
                    "fetch a file that has them"
                )
            if not math.isclose(info.sample_rate, self.sample_rate):
                raise ValueError(
                    f"{path} is sampled at {info.sample_rate:g} Hz but "
                    f"sample_rate is {self.sample_rate:g} Hz; set "
                    f"data.sample_rate to {info.sample_rate:g} or resample "
                    "the file"
                )
        marks = {
            info.attrs.get(SUBTRACTED_ATTRIBUTE) for info in segment.infos
        }
        if len(marks) > 1:
            kinds = ", ".join(
                strain_description(mark) for mark in sorted(marks, key=str)
            )
            raise ValueError(
                f"{self._source()} mix files of several kinds ({kinds}); "
                "train on files of one kind"
            )
        self.subtracted = marks.pop()
        models = {
            path.parent / info.attrs[SUBTRACTED_MODEL_ATTRIBUTE]
            for path, info in zip(segment.files, segment.infos, strict=True)
            if SUBTRACTED_MODEL_ATTRIBUTE in info.attrs
        }
        if len(models) > 1:
            raise ValueError(
                f"{self._source()} were made by {len(models)} fits of "
                f"{self.subtracted} ({', '.join(map(str, sorted(models)))}); "
                "train on the residual files of one classical run"
            )
        self.classical_model = models.pop() if models else None
        bounds = self.span_bounds(segment.t0)
        needed = max(end for _, end in bounds.values()) - segment.t0
        duration = segment.end - segment.t0
        if needed > duration + 0.5 / self.sample_rate:
            raise ValueError(
                f"{self._source()} holds {duration:g} s but train_offset + "
                f"train, valid and test durations need {needed:g} s; "
                "shorten the spans or use a longer file"
            )
        return bounds

    def _read_span(self, name: str, start: float, end: float) -> Span:
        return read_span(
            self.segment,
            name,
            self.strain_channel,
            self.witnesses,
            start,
            end,
            source=self._source(),
            fix="move the spans (data.train_offset and durations) to data "
            "without gaps",
        )

    def setup(self, stage: str | None = None) -> None:
        """Read the spans and fit the scalers on the training span."""
        if self.spans:
            return
        self.bounds = self._check_file()
        self.spans = {
            name: self._read_span(name, start, end)
            for name, (start, end) in self.bounds.items()
        }
        train = self.spans["train"]
        settling = self.bandpass.settling_size
        if train.strain.shape[-1] < self.kernel_size + 2 * settling + 1:
            raise ValueError(
                f"the training span ({self.durations['train']} s) is shorter "
                f"than one kernel ({self.kernel_length} s) plus the "
                f"band-pass settling time on both sides "
                f"({settling / self.sample_rate} s each); lengthen it"
            )
        self.witness_scaler.fit(train.witnesses)
        target = self.bandpass(train.strain)
        self.strain_scaler.fit(target)
        target = self.strain_scaler(target).to(torch.float32)
        self.train_witnesses = decimate_rows(train.witnesses, self.factor)
        self.target = decimate_rows(target, self.factor)

    def _device(self) -> torch.device:
        return self.trainer.lightning_module.device

    def span_on_device(self, name: str, device: torch.device) -> Span:
        """A span moved to ``device`` once and kept there."""
        span = self._on_device.get(name)
        if span is None or span.strain.device != device:
            span = self.spans[name].to(device)
            self._on_device[name] = span
        return span

    def _window_generator(self, device: torch.device) -> torch.Generator:
        """Random generator on ``device``, seeded differently per rank.

        Seeded from ``torch.initial_seed()`` (set by ``seed_everything``)
        plus the global rank, so that data-parallel processes draw
        different windows.
        """
        generator = self._generator
        if generator is None or generator.device != device:
            rank = 0 if self.trainer is None else self.trainer.global_rank
            generator = torch.Generator(device=device)
            generator.manual_seed(torch.initial_seed() + rank)
            self._generator = generator
        return generator

    def sample_batch(
        self, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows of the training span, gathered on ``device``.

        Offsets are drawn uniformly (1-sample stride at the network's
        rate) among windows whose target lies further than the band-pass
        settling time from the span's ends; the windows are gathered in
        one indexing of a strided view, straight into contiguous batch
        memory.

        Returns:
            Raw witnesses ``(batch, channels, kernel)`` (float32) and the
            scaled, band-passed strain ``(batch, kernel)``, both at the
            network's rate (``kernel = kernel_size / factor``).
        """
        on_device = self._windows_on_device
        if on_device is None or on_device[0].device != device:
            on_device = (
                self.train_witnesses.to(device),
                self.target.to(device),
            )
            self._windows_on_device = on_device
        witnesses, target = on_device
        settling = -(-self.bandpass.settling_size // self.factor)
        kernel = self.kernel_size // self.factor
        last_offset = target.shape[-1] - settling - kernel
        offsets = torch.randint(
            settling,
            last_offset + 1,
            (self.batch_size,),
            device=device,
            generator=self._window_generator(device),
        )
        windows = witnesses.unfold(-1, kernel, 1).transpose(0, 1)
        return windows[offsets], target.unfold(-1, kernel, 1)[offsets]

    def train_dataloader(self) -> DataLoader:
        """Batch indices; windows are drawn on the device."""
        return DataLoader(range(self.batches_per_epoch), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        """One item: the validation span."""
        return DataLoader(["valid"], batch_size=None)

    def test_dataloader(self) -> DataLoader:
        """One item: the test span (``test_duration`` must be > 0)."""
        if "test" not in self.spans:
            raise ValueError(
                "no test span: set data.test_duration > 0 to test"
            )
        return DataLoader(["test"], batch_size=None)

    def on_after_batch_transfer(
        self, batch: int | str, dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor] | Span:
        """Turn a batch index into windows, a span name into the span."""
        if isinstance(batch, str):
            return self.span_on_device(batch, self._device())
        return self.sample_batch(self._device())
