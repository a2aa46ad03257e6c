"""Parameters of the cleaning engine, carried with a trained model."""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

from deepclean_engine.filters import (
    DEFAULT_FILTER_ORDER,
    Band,
    bandpass_settling_time,
    validate_bands,
)

EdgeHandling = Literal["edge_pad", "overlap_add"]


def whole_samples(name: str, seconds: float, sample_rate: float) -> int:
    """Convert a duration to samples, refusing fractional sample counts.

    Args:
        name: parameter name, for the error message.
        seconds: duration in seconds.
        sample_rate: sample rate in Hz.

    Returns:
        The number of samples.
    """
    samples = seconds * sample_rate
    if abs(samples - round(samples)) > 1e-3:
        raise ValueError(
            f"{name}={seconds} s is not a whole number of samples at "
            f"{sample_rate:g} Hz; use a multiple of 1/{sample_rate:g} s"
        )
    return round(samples)


@dataclasses.dataclass(frozen=True)
class CleaningConfig:
    """Everything that fixes how predictions become cleaned strain.

    Training validation, offline cleaning and online cleaning all read
    these from the trained model's metadata (:meth:`to_dict` /
    :meth:`from_dict`); none of them is hard-coded elsewhere.

    Attributes:
        sample_rate: sample rate of strain and witnesses in Hz.
        bands: ``(low, high)`` cleaning bands in Hz (sorted, disjoint).
        kernel_length: length of each witness window fed to the model, s.
        inference_sampling_rate: windows per second, Hz; the stride
            between windows is ``1 / inference_sampling_rate`` s.
        edge_handling: ``"edge_pad"`` keeps a stride-long part of each
            prediction (``keep_offset`` s into the kernel) and discards
            the rest; ``"overlap_add"`` weights every prediction with a
            Hann window normalised so that overlapping weights sum to
            exactly 1.
        keep_offset: ``"edge_pad"`` only: start of the kept part of each
            prediction, seconds into the kernel. ``None`` keeps the
            central part; a later part (e.g. 0.3 s of a 1 s kernel at
            0.5 s stride) needs less future data and so lowers latency.
        frame_length: length of the frames that are band-passed and
            emitted, s. Frames start at GPS multiples of it.
        filter_order: Butterworth order of each band's filter.
        filter_pad: predicted noise used on each side of a frame when
            band-passing it, s: the only look-ahead besides the window
            geometry. ``None`` derives it from the bands with
            :func:`~deepclean_engine.filters.bandpass_settling_time`
            (99.999 % of the zero-phase kernel energy).

    ``None`` defaults are resolved at construction, so :meth:`to_dict`
    always records the values in use.
    """

    sample_rate: float = 4096.0
    bands: tuple[Band, ...] = ((55.0, 65.0),)
    kernel_length: float = 1.0
    inference_sampling_rate: float = 2.0
    edge_handling: EdgeHandling = "edge_pad"
    keep_offset: float | None = None
    frame_length: float = 1.0
    filter_order: int = DEFAULT_FILTER_ORDER
    filter_pad: float | None = None

    def __post_init__(self) -> None:
        if not self.sample_rate > 0:
            raise ValueError(
                f"sample_rate must be positive, got {self.sample_rate}"
            )
        set_field = object.__setattr__
        set_field(self, "sample_rate", float(self.sample_rate))
        set_field(self, "bands", validate_bands(self.bands, self.sample_rate))
        if self.edge_handling not in ("edge_pad", "overlap_add"):
            raise ValueError(
                f"edge_handling must be 'edge_pad' or 'overlap_add', got "
                f"{self.edge_handling!r}"
            )
        for name in ("kernel_length", "inference_sampling_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"{name} must be positive, got {getattr(self, name)}"
                )
        if not self.frame_length > 0:
            raise ValueError(
                f"frame_length must be positive, got {self.frame_length}"
            )
        kernel, stride = self.kernel_size, self.stride_size
        if not 1 <= stride <= kernel:
            raise ValueError(
                f"the stride 1/inference_sampling_rate = {stride} samples "
                f"must be between 1 and the kernel ({kernel} samples); "
                "raise inference_sampling_rate"
            )
        self._resolve_keep_offset()
        if self.filter_pad is None:
            set_field(
                self,
                "filter_pad",
                bandpass_settling_time(
                    self.bands, self.sample_rate, self.filter_order
                ),
            )
        if self.filter_pad < 0:
            raise ValueError(
                f"filter_pad must be >= 0 s, got {self.filter_pad}"
            )
        whole_samples("frame_length", self.frame_length, self.sample_rate)
        whole_samples("filter_pad", self.filter_pad, self.sample_rate)

    def _resolve_keep_offset(self) -> None:
        kernel, stride = self.kernel_size, self.stride_size
        if self.edge_handling == "overlap_add":
            if self.keep_offset is not None:
                raise ValueError(
                    "keep_offset applies to edge_handling='edge_pad' only; "
                    "leave it unset for 'overlap_add'"
                )
            if 2 * stride > kernel:
                raise ValueError(
                    "overlap_add needs windows that overlap at least twice: "
                    "set inference_sampling_rate >= 2 / kernel_length"
                )
            return
        if self.keep_offset is None:
            offset = (kernel - stride) // 2
            object.__setattr__(self, "keep_offset", offset / self.sample_rate)
        offset = whole_samples(
            "keep_offset", self.keep_offset, self.sample_rate
        )
        if not 0 <= offset <= kernel - stride:
            raise ValueError(
                f"keep_offset={self.keep_offset} s must lie in [0, "
                f"kernel_length - stride] = [0, "
                f"{(kernel - stride) / self.sample_rate}] s"
            )

    @property
    def kernel_size(self) -> int:
        """Samples per model input window."""
        return whole_samples(
            "kernel_length", self.kernel_length, self.sample_rate
        )

    @property
    def stride_size(self) -> int:
        """Samples between consecutive windows."""
        return whole_samples(
            "1/inference_sampling_rate",
            1 / self.inference_sampling_rate,
            self.sample_rate,
        )

    @property
    def frame_size(self) -> int:
        """Samples per frame."""
        return whole_samples(
            "frame_length", self.frame_length, self.sample_rate
        )

    @property
    def pad_size(self) -> int:
        """Samples of band-pass padding on each side of a frame."""
        return whole_samples("filter_pad", self.filter_pad, self.sample_rate)

    @property
    def keep_size(self) -> int | None:
        """``keep_offset`` in samples (``None`` for overlap-add)."""
        if self.keep_offset is None:
            return None
        return whole_samples("keep_offset", self.keep_offset, self.sample_rate)

    @property
    def stitch_support(self) -> tuple[int, int]:
        """``[first, last + 1)`` kernel samples with non-zero weight."""
        if self.edge_handling == "edge_pad":
            return self.keep_size, self.keep_size + self.stride_size
        return 1, self.kernel_size

    @property
    def streaming_latency(self) -> float:
        """Seconds from the end of a frame until it can be emitted.

        Assumes input arrives in chunks of ``frame_length`` aligned to the
        frame grid: the worst case over frames of the time at which the
        last needed window (for the frame's padding) is complete, rounded
        up to the next chunk boundary.
        """
        frame, stride, kernel = (
            self.frame_size,
            self.stride_size,
            self.kernel_size,
        )
        first, _ = self.stitch_support
        period = stride // math.gcd(frame, stride)
        worst = 0
        for index in range(period):
            frame_end = (index + 1) * frame
            needed = frame_end + self.pad_size - first
            last_window = -(-needed // stride) - 1
            data_end = last_window * stride + kernel
            worst = max(worst, -(-data_end // frame) * frame - frame_end)
        return worst / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dictionary of every field."""
        values = dataclasses.asdict(self)
        values["bands"] = [list(band) for band in self.bands]
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "CleaningConfig":
        """Rebuild a config from :meth:`to_dict` output (e.g. metadata)."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown cleaning parameters {unknown}; expected a subset "
                f"of {sorted(known)}"
            )
        arguments = dict(values)
        if "bands" in arguments:
            arguments["bands"] = tuple(
                tuple(band) for band in arguments["bands"]
            )
        return cls(**arguments)
