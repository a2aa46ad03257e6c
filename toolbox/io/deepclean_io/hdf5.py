"""Time series files in gwpy's HDF5 layout.

One file holds several channels sampled at one rate over one GPS span.
Each channel is a 1-D dataset at the file root, named by the channel
(e.g. ``"H1:GDS-CALIB_STRAIN"``), with the attributes gwpy's
``TimeSeriesDict.write(fname, format="hdf5")`` writes: ``x0`` (GPS start,
s), ``dx`` (sample spacing, s), ``xunit`` (``"s"``), ``name`` and
``channel`` (the channel name) and ``unit`` (the data unit). Files written
here are read by gwpy and files written by gwpy are read here.

Files are named ``{prefix}-{start}-{duration}.hdf5`` (GPS seconds, written
as integers when integral). Writes are atomic
(:func:`deepclean_io.atomic.atomic_output`): data go to a temporary file in
the destination folder that is synced and renamed to the final name only
once every channel is complete. Datasets are written uncompressed (gwpy
compresses with gzip; both read the same), in the order given.

A long segment is stored as back-to-back files (Fetch cuts it into files
of at most ``max_duration`` s); :func:`contiguous_files` groups them and
:meth:`ContiguousFiles.read` reads across their boundaries.

A file may carry string attributes at its root (``TimeSeriesInfo.attrs``),
such as :data:`SUBTRACTED_ATTRIBUTE`, which marks a strain channel from
which a classical filter's noise estimate has already been subtracted.

Files that cannot be read (empty, truncated, not HDF5, no datasets) raise
``ValueError`` naming the file, what is wrong and what to do.
"""

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np
from numpy.typing import DTypeLike

from deepclean_io.atomic import atomic_output

HDF5_SUFFIX = ".hdf5"
_NAME_PATTERN = re.compile(
    r"^(?P<prefix>.+)-(?P<start>\d+(?:\.\d+)?)-(?P<duration>\d+(?:\.\d+)?)"
    + re.escape(HDF5_SUFFIX)
    + "$"
)
# Samples by which a time may miss the sample grid: float64 GPS times
# near 1e9 s carry ~1e-3 samples of rounding at 4096 Hz.
_GRID_TOLERANCE = 0.01
# Root attribute naming the method whose noise estimate the file's strain
# channel already has subtracted (e.g. "NOMAD"); absent for raw strain.
SUBTRACTED_ATTRIBUTE = "deepclean_subtracted"
# Root attribute naming that method's fitted model file, in the file's
# own folder (e.g. "nomad.h5").
SUBTRACTED_MODEL_ATTRIBUTE = "deepclean_subtracted_model"
_REFETCH = (
    "delete it and re-run Fetch (deepclean-data fetch), which rewrites it"
)


def _format_seconds(value: float) -> str:
    """Write a GPS time or duration as an integer when it is integral."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def hdf5_name(prefix: str, start: float, duration: float) -> str:
    """File name ``{prefix}-{start}-{duration}.hdf5`` for a GPS span.

    Args:
        prefix: Leading part of the name (no path separators).
        start: GPS start of the span, s.
        duration: Length of the span, s (> 0).
    """
    if not prefix or "/" in prefix or os.sep in prefix:
        raise ValueError(
            f"prefix {prefix!r} must be a non-empty name without path "
            "separators; pass the folder separately"
        )
    if start < 0:
        raise ValueError(f"start {start} must be a GPS time >= 0")
    if duration <= 0:
        raise ValueError(f"duration {duration} must be > 0 seconds")
    return (
        f"{prefix}-{_format_seconds(start)}-{_format_seconds(duration)}"
        f"{HDF5_SUFFIX}"
    )


def parse_hdf5_name(path: str | os.PathLike) -> tuple[str, float, float]:
    """Split a ``{prefix}-{start}-{duration}.hdf5`` name.

    Args:
        path: File name or path; only the last component is parsed.

    Returns:
        ``(prefix, start, duration)`` with GPS start and duration in s.
    """
    name = Path(path).name
    match = _NAME_PATTERN.match(name)
    if match is None:
        raise ValueError(
            f"file name {name!r} does not follow "
            "'{prefix}-{start}-{duration}.hdf5' (GPS start and duration "
            "in seconds, e.g. 'deepclean-1250000000-4096.hdf5')"
        )
    return (
        match["prefix"],
        float(match["start"]),
        float(match["duration"]),
    )


@dataclass(frozen=True)
class TimeSeriesInfo:
    """What a time series file holds.

    Attributes:
        channels: Channel names, in file order.
        t0: GPS time of the first sample, s.
        sample_rate: Samples per second of every channel, Hz.
        duration: Length of every channel, s.
        attrs: String attributes of the file's root (e.g.
            :data:`SUBTRACTED_ATTRIBUTE`).
        units: Unit string of each channel (gwpy's ``unit`` attribute).
    """

    channels: tuple[str, ...]
    t0: float
    sample_rate: float
    duration: float
    attrs: Mapping[str, str] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        """Samples per channel."""
        return round(self.duration * self.sample_rate)

    @property
    def end(self) -> float:
        """GPS time just after the last sample, s."""
        return self.t0 + self.duration


@contextmanager
def _reading(fname: Path) -> Iterator[h5py.File]:
    """Open a file for reading; h5py's failures on a damaged file (at
    open or while reading) become a ``ValueError`` naming the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not readable HDF5 (empty, truncated,
            corrupt or another format).
    """
    if not fname.is_file():
        raise FileNotFoundError(
            f"data file {fname} does not exist; check the path or re-run "
            "Fetch (deepclean-data fetch)"
        )
    try:
        with h5py.File(fname, "r") as h5file:
            yield h5file
    except (OSError, RuntimeError, KeyError) as error:
        # h5py raises KeyError for an object whose header is corrupt
        raise ValueError(
            f"{fname} is not a readable HDF5 file (truncated or corrupt?"
            f" {os.path.getsize(fname)} bytes; h5py: {error}); {_REFETCH}"
        ) from error


def _channel_datasets(
    h5file: h5py.File, fname: Path
) -> dict[str, h5py.Dataset]:
    """Root datasets of a file, keyed by channel name."""
    datasets = {
        name: item
        for name, item in h5file.items()
        if isinstance(item, h5py.Dataset)
    }
    if not datasets:
        raise ValueError(
            f"{fname} holds no time series datasets at its root (gwpy's "
            f"HDF5 layout has one dataset per channel); {_REFETCH}"
        )
    return datasets


def _dataset_timing(
    dataset: h5py.Dataset, fname: Path
) -> tuple[float, float, int]:
    """(GPS start in s, sample rate in Hz, samples) of one channel."""
    missing = [key for key in ("x0", "dx") if key not in dataset.attrs]
    if missing:
        raise ValueError(
            f"channel {dataset.name.lstrip('/')!r} in {fname} lacks the "
            f"attribute(s) {missing}; gwpy's HDF5 layout stores the GPS "
            "start as 'x0' and the sample spacing as 'dx'"
        )
    if dataset.ndim != 1:
        raise ValueError(
            f"channel {dataset.name.lstrip('/')!r} in {fname} has shape "
            f"{dataset.shape}; expected a 1-D time series"
        )
    dx = float(dataset.attrs["dx"])
    if not dx > 0:
        raise ValueError(
            f"channel {dataset.name.lstrip('/')!r} in {fname} has sample "
            f"spacing dx={dx}; it must be > 0"
        )
    return float(dataset.attrs["x0"]), 1.0 / dx, dataset.shape[0]


def _common_timing(
    datasets: Mapping[str, h5py.Dataset], fname: Path
) -> tuple[float, float, int]:
    """GPS start (s), sample rate (Hz) and length shared by channels."""
    timings = {
        name: _dataset_timing(dataset, fname)
        for name, dataset in datasets.items()
    }
    rates = {name: timing[1] for name, timing in timings.items()}
    first_name, (t0, sample_rate, num_samples) = next(iter(timings.items()))
    if not all(math.isclose(r, sample_rate) for r in rates.values()):
        listing = ", ".join(f"{n}: {r:g} Hz" for n, r in rates.items())
        raise ValueError(
            f"channels in {fname} have different sample rates ({listing}); "
            "read channels of one rate at a time (pass channels=...) or "
            "resample them to a common rate"
        )
    for name, (x0, _, length) in timings.items():
        if abs(x0 - t0) * sample_rate > _GRID_TOLERANCE or (
            length != num_samples
        ):
            raise ValueError(
                f"channels in {fname} cover different spans: {first_name!r} "
                f"starts at {t0} with {num_samples} samples, {name!r} at "
                f"{x0} with {length}; read them separately"
            )
    return t0, sample_rate, num_samples


def file_info(fname: str | os.PathLike) -> TimeSeriesInfo:
    """Channels, GPS start, sample rate and duration of a file.

    Args:
        fname: Path of a file in gwpy's HDF5 layout.

    Returns:
        A ``TimeSeriesInfo``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an unreadable file, one without datasets, or channels
            that differ in sample rate or span.
    """
    path = Path(fname)
    with _reading(path) as h5file:
        datasets = _channel_datasets(h5file, path)
        t0, sample_rate, num_samples = _common_timing(datasets, path)
        return TimeSeriesInfo(
            channels=tuple(datasets),
            t0=t0,
            sample_rate=sample_rate,
            duration=num_samples / sample_rate,
            attrs={
                key: str(value)
                for key, value in h5file.attrs.items()
                if isinstance(value, str)
            },
            units={
                name: str(dataset.attrs.get("unit", ""))
                for name, dataset in datasets.items()
            },
        )


def strain_description(subtracted: str | None) -> str:
    """What a file's strain channel holds, for messages: ``"raw strain"``
    or the strain after a method's noise estimate was subtracted."""
    if subtracted is None:
        return "raw strain"
    return f"strain with {subtracted}'s noise estimate subtracted"


def check_subtracted(
    fname: str | os.PathLike,
    info: TimeSeriesInfo,
    expected: str | None,
    user: str,
    fix: str,
) -> None:
    """Refuse a file whose strain is not what ``user`` expects.

    Args:
        fname: Path of the file.
        info: Its :func:`file_info`.
        expected: The method whose estimate the strain must have
            subtracted (:data:`SUBTRACTED_ATTRIBUTE`), None for raw
            strain.
        user: What reads the file, for the message (e.g. "the model").
        fix: What to do instead, for the message.

    Raises:
        ValueError: the file's strain differs from ``expected``.
    """
    found = info.attrs.get(SUBTRACTED_ATTRIBUTE)
    if found != expected:
        raise ValueError(
            f"{fname} holds {strain_description(found)}, but {user} "
            f"expects {strain_description(expected)}; {fix}"
        )


def _sample_index(
    time: float, t0: float, sample_rate: float, num_samples: int
) -> int:
    """Index of the first sample at or after a GPS time (s)."""
    offset = (time - t0) * sample_rate
    index = math.ceil(offset - _GRID_TOLERANCE)
    return min(max(index, 0), num_samples)


def read_timeseries(
    fname: str | os.PathLike,
    channels: Sequence[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    dtype: DTypeLike | None = None,
) -> tuple[dict[str, np.ndarray], float, float]:
    """Read channels over a GPS span from a file in gwpy's HDF5 layout.

    Args:
        fname: Path of the file.
        channels: Channels to read, in the order wanted; all when None.
        start: GPS start of the span, s; the file start when None. The
            span begins at the first sample at or after ``start``.
        end: GPS end of the span (exclusive), s; the file end when None.
        dtype: Cast every channel to this dtype; stored dtypes when None.

    Returns:
        ``(data, t0, sample_rate)``: 1-D arrays of shape ``(time,)`` keyed
        by channel, the GPS time of their first sample (s) and the sample
        rate (Hz).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an unreadable file, missing channels or a span
            outside the file.
    """
    if isinstance(channels, str):
        raise TypeError(
            f"channels must be a sequence of names, got the string "
            f"{channels!r}; pass [{channels!r}]"
        )
    path = Path(fname)
    with _reading(path) as h5file:
        available = _channel_datasets(h5file, path)
        wanted = list(available) if channels is None else list(channels)
        missing = [name for name in wanted if name not in available]
        if missing:
            raise ValueError(
                f"channel(s) {missing} not in {path}; it holds "
                f"{sorted(available)}"
            )
        datasets = {name: available[name] for name in wanted}
        t0, sample_rate, num_samples = _common_timing(datasets, path)
        file_end = t0 + num_samples / sample_rate
        span_start = t0 if start is None else start
        span_end = file_end if end is None else end
        if span_end <= span_start:
            raise ValueError(
                f"end ({span_end}) must be after start ({span_start})"
            )
        tolerance = _GRID_TOLERANCE / sample_rate
        if span_start < t0 - tolerance or span_end > file_end + tolerance:
            raise ValueError(
                f"requested span [{span_start}, {span_end}) is outside "
                f"[{t0}, {file_end}) covered by {path}; ask for a span "
                "inside the file or read the neighbouring file too"
            )
        first = _sample_index(span_start, t0, sample_rate, num_samples)
        stop = _sample_index(span_end, t0, sample_rate, num_samples)
        data = {
            name: (dataset if dtype is None else dataset.astype(dtype))[
                first:stop
            ]
            for name, dataset in datasets.items()
        }
        return data, t0 + first / sample_rate, sample_rate


def _span_text(info: TimeSeriesInfo) -> str:
    return f"[{info.t0!r}, {info.end!r})"


@dataclass(frozen=True)
class ContiguousFiles:
    """Back-to-back files of one segment, read as one time series.

    Attributes:
        files: paths, in GPS order.
        infos: what each file holds, in the same order.
    """

    files: tuple[Path, ...]
    infos: tuple[TimeSeriesInfo, ...]

    @property
    def t0(self) -> float:
        """GPS time of the first sample, s."""
        return self.infos[0].t0

    @property
    def end(self) -> float:
        """GPS time just after the last sample, s."""
        return self.infos[-1].end

    @property
    def sample_rate(self) -> float:
        """Samples per second, Hz."""
        return self.infos[0].sample_rate

    def read(
        self,
        channels: Sequence[str],
        start: float,
        end: float,
        dtype: DTypeLike | None = None,
    ) -> tuple[dict[str, np.ndarray], float, float]:
        """Read channels over ``[start, end)``, across file boundaries.

        Args:
            channels: channels to read, in the order wanted.
            start: GPS start, s; the span begins at the first sample at or
                after it.
            end: GPS end (exclusive), s.
            dtype: cast every channel to this dtype; stored when None.

        Returns:
            ``(data, t0, sample_rate)`` as :func:`read_timeseries`.

        Raises:
            ValueError: a span outside the files, or a file that cannot
                be read or lacks a channel.
        """
        tolerance = _GRID_TOLERANCE / self.sample_rate
        if start < self.t0 - tolerance or end > self.end + tolerance:
            listing = ", ".join(str(path) for path in self.files)
            raise ValueError(
                f"requested span [{start!r}, {end!r}) is outside "
                f"[{self.t0!r}, {self.end!r}) covered by {listing}"
            )
        pieces: list[dict[str, np.ndarray]] = []
        first_sample = None
        for path, info in zip(self.files, self.infos, strict=True):
            lo, hi = max(start, info.t0), min(end, info.end)
            if (hi - lo) * info.sample_rate < 1 - _GRID_TOLERANCE:
                continue
            data, t0, _ = read_timeseries(path, channels, lo, hi, dtype)
            first_sample = t0 if first_sample is None else first_sample
            pieces.append(data)
        if first_sample is None:
            raise ValueError(
                f"requested span [{start!r}, {end!r}) holds no sample"
            )
        if len(pieces) == 1:  # freshly read arrays: no copy needed
            return pieces[0], first_sample, self.sample_rate
        data = {
            name: np.concatenate([piece[name] for piece in pieces])
            for name in pieces[0]
        }
        return data, first_sample, self.sample_rate


def contiguous_files(
    fnames: Sequence[str | os.PathLike],
) -> list[ContiguousFiles]:
    """Group files into runs without gaps, in GPS order.

    Two files are joined when they share a sample rate and one ends where
    the next starts, to within a hundredth of a sample.

    Args:
        fnames: paths of files in gwpy's HDF5 layout, in any order.

    Returns:
        One ``ContiguousFiles`` per run of back-to-back files.

    Raises:
        ValueError: two files overlap in time (naming both and their
            spans), or a file cannot be read.
    """
    infos = sorted(
        ((Path(fname), file_info(fname)) for fname in fnames),
        key=lambda item: (item[1].t0, item[1].end),
    )
    groups: list[list[tuple[Path, TimeSeriesInfo]]] = []
    for path, info in infos:
        if groups:
            last_path, last = groups[-1][-1]
            tolerance = _GRID_TOLERANCE / info.sample_rate
            if info.t0 < last.end - tolerance:
                raise ValueError(
                    f"data files {last_path} {_span_text(last)} and {path} "
                    f"{_span_text(info)} overlap; pass each stretch of data "
                    "once (drop one file, or re-run Fetch into an empty "
                    "folder)"
                )
            if info.t0 <= last.end + tolerance and math.isclose(
                info.sample_rate, last.sample_rate
            ):
                groups[-1].append((path, info))
                continue
        groups.append([(path, info)])
    return [
        ContiguousFiles(
            files=tuple(path for path, _ in group),
            infos=tuple(info for _, info in group),
        )
        for group in groups
    ]


class TimeSeriesWriter:
    """Stream equally sampled channels into a file, chunk by chunk.

    Each ``write`` appends the next samples of every channel, so files
    longer than memory are written with memory bounded by one chunk, to a
    temporary file (:func:`deepclean_io.atomic.atomic_output`). On a clean
    exit the writer checks that every channel holds ``num_samples``
    samples and renames the temporary file to ``fname`` atomically; on an
    exception the temporary file is removed and ``fname`` is untouched.

    A channel's dataset takes the dtype of the first chunk written for it.

    Args:
        fname: Final path of the file (usually ``hdf5_name(...)``).
        channels: Channel names, one dataset each.
        t0: GPS time of the first sample, s.
        sample_rate: Samples per second, Hz.
        num_samples: Samples every channel will hold.
        units: Unit string per channel (e.g. ``"strain"``, ``"ct"``);
            dimensionless (``""``) for channels not listed.
        attrs: String attributes of the file's root.
    """

    def __init__(
        self,
        fname: str | os.PathLike,
        channels: Sequence[str],
        t0: float,
        sample_rate: float,
        num_samples: int,
        units: Mapping[str, str] | None = None,
        attrs: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(channels, str):
            raise TypeError(
                f"channels must be a sequence of names, got the string "
                f"{channels!r}; pass [{channels!r}]"
            )
        self.fname = Path(fname)
        self.channels = tuple(channels)
        if not self.channels:
            raise ValueError("channels is empty; give at least one channel")
        duplicates = sorted(
            {name for name in self.channels if self.channels.count(name) > 1}
        )
        if duplicates:
            raise ValueError(f"channels {duplicates} are listed twice")
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise ValueError(f"sample_rate {sample_rate} must be > 0 Hz")
        if not math.isfinite(t0):
            raise ValueError(f"t0 {t0} must be a finite GPS time")
        if num_samples <= 0:
            raise ValueError(f"num_samples {num_samples} must be > 0")
        self.units = dict(units or {})
        self.attrs = dict(attrs or {})
        unknown = sorted(set(self.units) - set(self.channels))
        if unknown:
            raise ValueError(
                f"units given for {unknown}, which are not among the "
                f"channels {list(self.channels)}"
            )
        self.t0 = float(t0)
        self.sample_rate = float(sample_rate)
        self.num_samples = int(num_samples)
        self.samples_written = 0
        self._output = ExitStack()
        self._h5file: h5py.File | None = None

    def __enter__(self) -> "TimeSeriesWriter":
        if not self.fname.parent.is_dir():
            raise FileNotFoundError(
                f"folder {self.fname.parent} does not exist; create it "
                "before writing"
            )
        with ExitStack() as output:
            temporary = output.enter_context(atomic_output(self.fname))
            self._h5file = h5py.File(temporary, "w", track_order=True)
            self._h5file.attrs.update(self.attrs)
            self._output = output.pop_all()
        return self

    def _create_dataset(self, name: str, dtype: np.dtype) -> h5py.Dataset:
        """Dataset for one channel with gwpy's attributes."""
        dataset = self._h5file.create_dataset(
            name,
            shape=(self.num_samples,),
            dtype=dtype,
        )
        dataset.attrs["name"] = name
        dataset.attrs["channel"] = name
        dataset.attrs["unit"] = self.units.get(name, "")
        dataset.attrs["x0"] = self.t0
        dataset.attrs["dx"] = 1.0 / self.sample_rate
        dataset.attrs["xunit"] = "s"
        return dataset

    def write(self, chunk: Mapping[str, np.ndarray]) -> None:
        """Append the next samples of every channel.

        Args:
            chunk: One 1-D array of shape ``(time,)`` per channel, all of
                the same length.
        """
        if self._h5file is None:
            raise RuntimeError(
                "TimeSeriesWriter.write called outside its 'with' block"
            )
        if set(chunk) != set(self.channels):
            missing = sorted(set(self.channels) - set(chunk))
            extra = sorted(set(chunk) - set(self.channels))
            raise ValueError(
                f"chunk must hold every channel of {self.fname.name}: "
                f"missing {missing}, unexpected {extra}"
            )
        arrays = {name: np.asarray(chunk[name]) for name in self.channels}
        lengths = {name: array.shape for name, array in arrays.items()}
        if any(array.ndim != 1 for array in arrays.values()) or (
            len({array.shape[0] for array in arrays.values()}) != 1
        ):
            raise ValueError(
                f"chunk arrays must be 1-D and of equal length; got shapes "
                f"{lengths}"
            )
        length = next(iter(arrays.values())).shape[0]
        stop = self.samples_written + length
        if stop > self.num_samples:
            raise ValueError(
                f"chunk of {length} samples would exceed the "
                f"{self.num_samples} samples declared for {self.fname.name} "
                f"({self.samples_written} already written)"
            )
        for name, array in arrays.items():
            dataset = self._h5file.get(name)
            if dataset is None:
                dataset = self._create_dataset(name, array.dtype)
            dataset[self.samples_written : stop] = array
        self.samples_written = stop

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        h5file, self._h5file = self._h5file, None
        if exc_type is not None:
            # the temporary file is removed; the exception goes on
            try:
                h5file.close()
            finally:
                self._output.__exit__(exc_type, exc, traceback)
            return
        with self._output:
            h5file.close()
            if self.samples_written != self.num_samples:
                raise ValueError(
                    f"{self.fname.name} is incomplete: "
                    f"{self.samples_written} of {self.num_samples} "
                    "samples were written per channel; the file was "
                    "not created"
                )


def write_timeseries(
    fname: str | os.PathLike,
    data: Mapping[str, np.ndarray],
    t0: float,
    sample_rate: float,
    units: Mapping[str, str] | None = None,
    attrs: Mapping[str, str] | None = None,
) -> Path:
    """Write channels of equal length to a file atomically.

    Args:
        fname: Destination path (usually ``hdf5_name(...)``).
        data: One 1-D array of shape ``(time,)`` per channel.
        t0: GPS time of the first sample, s.
        sample_rate: Samples per second, Hz.
        units: Unit string per channel; dimensionless when not listed.
        attrs: String attributes of the file's root.

    Returns:
        The path written.
    """
    if not data:
        raise ValueError("data is empty; give at least one channel")
    num_samples = len(next(iter(data.values())))
    with TimeSeriesWriter(
        fname,
        list(data),
        t0,
        sample_rate,
        num_samples,
        units=units,
        attrs=attrs,
    ) as writer:
        writer.write(data)
    return writer.fname
