"""Online cleaning of live 1 s low-latency frames.

The detectors publish one pair of 1 s GWF frames per second:
``{obs}-{ifo}_llhoft-{gps}-1.gwf`` (strain and state vector) and
``{obs}-{ifo}_lldetchar-{gps}-1.gwf`` (witnesses). :func:`online` reads
them as they appear, cleans them with the model published in a model
folder (:func:`deepclean_engine.exported.published_model`) through the
cleaning engine's streaming form, :class:`~deepclean_engine.FrameCleaner`,
whose output equals the offline cleaning and the training validation of
the same data, and writes one frame per input second,
atomically, ``{obs}-{ifo}_llhoft_DEEPCLEAN-{gps}-1.gwf``, holding

- ``{strain}_DC``: raw strain minus the band-passed predicted noise;
- ``{strain}_DC_GATED``: the cleaned strain while the in-band ASD ratio
  of cleaned to raw strain over the last ``gate_length`` s is below 1,
  the strain is analysis-ready and the second was cleaned; the raw
  strain otherwise;
- ``{strain}_DC_STATE``: :class:`State` bits, one value per sample.

Every input second yields exactly one output second, in GPS order: input
that is missing, late, truncated, at another sample rate or without a
channel is filled with NaN, and the seconds it touches carry the raw
strain (zeros where the strain itself is missing) and their state bits.
A second's output needs the look-ahead
(:attr:`~deepclean_engine.CleaningConfig.streaming_latency`) of later
input that the model's windows and the band-pass padding
(``filter_energy``) set. One JSON line per output second is printed (and
appended to ``log_file``): GPS, compute and read time, latency, in-band
ratio, model version, state and flags.

Restarts resume after the newest output frame (warming the cleaner up on
the input frames before it that are still on disk). Between frames the
cleaner looks for a newly published model, validates it (channels in the
frames, sample rate, bands, a finite test prediction), warms it up on the
buffered input and switches at a frame boundary, keeping the old model
when the new one is broken.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

if TYPE_CHECKING:
    import torch

    from deepclean_engine import CleanedSegment, CleaningEngine, FrameCleaner

logger = logging.getLogger("deepclean_clean.online")

OUTPUT_TAG = "llhoft_DEEPCLEAN"
"""Frame type of the output: ``{obs}-{ifo}_llhoft_DEEPCLEAN-{gps}-1.gwf``."""
FRAME_LENGTH = 1
"""Seconds per input and output frame."""
HISTORY_SECONDS = 64
"""Input seconds kept to warm up a newly published model."""


class State(enum.IntFlag):
    """Bits of the ``{strain}_DC_STATE`` channel."""

    CLEANED = 1
    """The predicted noise was subtracted in ``{strain}_DC``."""
    GATED_OFF = 2
    """``{strain}_DC_GATED`` carries the raw strain."""
    WITNESS_MISSING = 4
    """Witness input of this second's context was missing, filled or
    not finite."""
    STRAIN_NOT_READY = 8
    """The state vector was not analysis-ready (or the strain frame was
    missing)."""
    MODEL_CHANGED = 16
    """The first second cleaned by a newly published model."""
    STRAIN_MISSING = 32
    """No strain for this second: the outputs hold zeros."""


@dataclass
class InputSecond:
    """One second of input, filled with NaN where it is missing.

    Attributes:
        gps: GPS start, s.
        strain: raw strain ``(time,)``, float64.
        witnesses: ``(channels, time)`` in the model's order, float32.
        strain_missing: no usable strain frame.
        witness_missing: a witness frame or channel was missing, or not
            finite.
        ready: the state vector was analysis-ready for every sample.
        arrival: wall-clock time the strain frame was written (its
            modification time), s; None when it is missing.
        read_seconds: time spent reading the frames (and looking for
            them), not waiting between looks, s.
    """

    gps: int
    strain: np.ndarray
    witnesses: np.ndarray
    strain_missing: bool = False
    witness_missing: bool = False
    ready: bool = True
    arrival: float | None = None
    read_seconds: float = 0.0


@dataclass
class OnlineSummary:
    """What an online run did.

    Attributes:
        first: GPS of the first output second, s (None if none).
        last: GPS of the last output second, s.
        frames: output frames written.
        cleaned: output seconds with the noise subtracted.
        model_versions: published model versions used, in order.
    """

    first: int | None = None
    last: int | None = None
    frames: int = 0
    cleaned: int = 0
    model_versions: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        """One line for people."""
        if self.first is None:
            return "no frame written"
        return (
            f"wrote {self.frames} frames [{self.first}, {self.last + 1}), "
            f"{self.cleaned} cleaned, model versions {self.model_versions}"
        )


@dataclass
class FrameSource:
    """Reads the input frames of one GPS second, waiting for them.

    Attributes:
        strain_dir: folder of ``llhoft`` frames.
        witness_dir: folder of ``lldetchar`` frames.
        strain_channel: e.g. ``H1:GDS-CALIB_STRAIN``.
        sample_rate: expected sample rate, Hz.
        state_mask: bits of the state vector that must all be set.
        wait_limit: seconds to wait for a frame (and retry a truncated
            one) before treating it as missing.
        poll_interval: seconds between looks for a frame.
        clock: wall clock, s.
        sleep: waits the given seconds.
        witness_channels: channels seen in the latest witness frame.
    """

    strain_dir: Path
    witness_dir: Path
    strain_channel: str
    sample_rate: float
    state_mask: int
    wait_limit: float
    poll_interval: float
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    witness_channels: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        from deepclean_io.gwf import state_vector_channel

        self.strain_dir = Path(self.strain_dir)
        self.witness_dir = Path(self.witness_dir)
        self.ifo = self.strain_channel.split(":")[0]
        self.state_channel = state_vector_channel(self.ifo)
        self._missed: dict[Path, int] = {}

    def strain_path(self, gps: int) -> Path:
        from deepclean_io.gwf import LLHOFT_TAG, frame_name

        return frame_name(
            self.strain_dir, self.ifo, LLHOFT_TAG, gps, FRAME_LENGTH
        )

    def witness_path(self, gps: int) -> Path:
        from deepclean_io.gwf import LLDETCHAR_TAG, frame_name

        return frame_name(
            self.witness_dir, self.ifo, LLDETCHAR_TAG, gps, FRAME_LENGTH
        )

    def newest_gps(self) -> int | None:
        """GPS of the newest strain frame in ``strain_dir``."""
        from deepclean_io.gwf import LLHOFT_TAG, newest_frame

        return newest_frame(self.strain_dir, self.ifo, LLHOFT_TAG)

    def read(
        self, gps: int, witnesses: list[str], wait: bool = True
    ) -> InputSecond:
        """The input of second ``gps``, waiting up to ``wait_limit``.

        Args:
            gps: GPS second.
            witnesses: witness channels in the model's order.
            wait: wait for frames that are not there yet (False for
                seconds in the past, e.g. warming up after a restart).
        """
        size = round(self.sample_rate * FRAME_LENGTH)
        second = InputSecond(
            gps=gps,
            strain=np.full(size, np.nan),
            witnesses=np.full((len(witnesses), size), np.nan, np.float32),
        )
        deadline = self.clock() + (self.wait_limit if wait else 0.0)
        strain_done = witness_done = False
        while True:
            began = time.perf_counter()
            if not strain_done:
                strain_done = self._read_strain(second)
            if not witness_done:
                witness_done = self._read_witnesses(second, witnesses)
            second.read_seconds += time.perf_counter() - began
            if (strain_done and witness_done) or self.clock() >= deadline:
                break
            self.sleep(self.poll_interval)
        if not strain_done:
            second.strain_missing = True
            second.ready = False
            self._note_missing(self.strain_path(gps), gps)
        if not witness_done:
            second.witness_missing = True
            self._note_missing(self.witness_path(gps), gps)
        if not np.isfinite(second.witnesses).all():
            second.witness_missing = True
        return second

    def _note_missing(self, path: Path, gps: int) -> None:
        logger.warning(
            "GPS %d: %s missing or unreadable after %.1f s; filled",
            gps,
            path.name,
            self.wait_limit,
        )
        self._missed[path] = gps

    def report_late_frames(self) -> None:
        """Log frames that appeared after they were given up on (they are
        ignored: their second was already filled)."""
        for path in [p for p in self._missed if p.exists()]:
            logger.warning(
                "GPS %d: %s arrived after the wait limit; ignored",
                self._missed.pop(path),
                path.name,
            )

    def _frame(
        self, path: Path, wanted: list[str]
    ) -> tuple[dict[str, np.ndarray], set[str]] | None:
        """Channels of a complete frame: None while it is absent or not
        readable (being written, truncated)."""
        from deepclean_io.gwf import gwf_channels, read_gwf

        if not path.exists():
            return None
        try:
            available = set(gwf_channels(path))
            present = [name for name in wanted if name in available]
            if not present:
                return {}, available
            data, _, sample_rate = read_gwf(path, present)
        except (OSError, ValueError):
            return None
        if sample_rate != self.sample_rate:
            logger.warning(
                "%s is sampled at %g Hz, not %g Hz; treated as missing",
                path.name,
                sample_rate,
                self.sample_rate,
            )
            return {}, set()
        return data, available

    def _read_strain(self, second: InputSecond) -> bool:
        path = self.strain_path(second.gps)
        frame = self._frame(path, [self.strain_channel, self.state_channel])
        if frame is None:
            return False
        data, _ = frame
        if self.strain_channel not in data:
            logger.warning("%s holds no %s", path.name, self.strain_channel)
            return False
        second.strain = np.asarray(data[self.strain_channel], np.float64)
        second.arrival = path.stat().st_mtime
        state = data.get(self.state_channel)
        second.ready = state is not None and bool(
            np.all(
                (state.astype(np.int64) & self.state_mask) == self.state_mask
            )
        )
        return True

    def _read_witnesses(
        self, second: InputSecond, witnesses: list[str]
    ) -> bool:
        path = self.witness_path(second.gps)
        frame = self._frame(path, witnesses)
        if frame is None:
            return False
        data, available = frame
        self.witness_channels = available
        absent = [name for name in witnesses if name not in data]
        if absent:
            logger.warning(
                "GPS %d: %s lacks %s; filled",
                second.gps,
                path.name,
                ", ".join(absent),
            )
            second.witness_missing = True
        for index, name in enumerate(witnesses):
            if name in data:
                second.witnesses[index] = data[name]
        return True


@dataclass
class LoadedModel:
    """A published model ready to clean.

    Attributes:
        version: its published version.
        metadata: its metadata (``model.json``).
        engine: the cleaning engine around it.
        cleaner: its streaming cleaner.
        classical: a hybrid model's classical stage (NOMAD's estimates
            from the model it carries), which the engine subtracts with
            the prediction; None for a model trained on raw strain.
    """

    version: Any
    metadata: dict[str, Any]
    engine: CleaningEngine
    cleaner: FrameCleaner
    classical: Any = None

    @property
    def witnesses(self) -> list[str]:
        return list(self.metadata["witnesses"])

    def context_seconds(self) -> int:
        """Input seconds before an output second that its cleaning
        needs."""
        start, _ = self.engine.required_span(0.0, float(FRAME_LENGTH))
        return math.ceil(-start - 1e-9)

    def prior(self, second: InputSecond) -> torch.Tensor | None:
        """The classical stage's noise estimate of one input second, for
        a hybrid model (None otherwise; NaN where the second's data are
        not finite)."""
        import torch

        if self.classical is None:
            return None
        rate = self.engine.config.sample_rate
        return torch.from_numpy(
            self.classical.over(
                second.strain, second.witnesses, round(second.gps * rate)
            )
        )


def load_model(
    model_dir: Path,
    strain_channel: str | None,
    sample_rate: float | None,
    available: set[str] | None,
    device: str,
    kernel_length: float | None = None,
    stride: float | None = None,
    filter_energy: float | None = None,
) -> LoadedModel | None:
    """Load and validate the model published in ``model_dir``.

    Args:
        model_dir: folder a model is published into.
        strain_channel: strain channel of the frames (None: any).
        sample_rate: sample rate of the frames, Hz (None: not known yet).
        available: witness channels of the frames (None: not known yet).
        device: compute device.
        kernel_length: window length instead of the model's, s.
        stride: window stride instead of the model's, s.
        filter_energy: band-pass padding energy instead of the model's.

    Returns:
        The model, or None while a publication is in progress.

    Raises:
        ValueError: the model does not load, was trained on another
            strain channel, sample rate, on channels the frames lack or
            after a classical stage it does not carry,
            its bands reach the Nyquist frequency, or its prediction of a
            test window is not finite.
    """
    import torch

    from deepclean_clean.clean import classical_stage, window_config
    from deepclean_clean.nomad import NomadEstimates
    from deepclean_engine import CleaningEngine, load_exported_model
    from deepclean_engine.exported import published_model

    published = published_model(model_dir)
    if published is None:
        return None
    path, metadata = published
    module, _ = load_exported_model(path, device)
    if published_model(model_dir) != published:
        return None  # a newer publication landed while loading
    problems = []
    if strain_channel is not None and (
        metadata["strain_channel"] != strain_channel
    ):
        problems.append(
            f"it cleans {metadata['strain_channel']}, not {strain_channel}"
        )
    if sample_rate is not None and metadata["sample_rate"] != sample_rate:
        problems.append(
            f"it runs at {metadata['sample_rate']} Hz, the frames at "
            f"{sample_rate} Hz"
        )
    if available is not None:
        absent = sorted(set(metadata["witnesses"]) - available)
        if absent:
            problems.append(f"the frames lack its witnesses {absent}")
    try:
        classical = classical_stage(path, metadata)
    except ValueError as error:
        classical = None
        problems.append(str(error))
    if problems:
        raise ValueError(
            f"model version {metadata.get('version')} in {model_dir}: "
            + "; ".join(problems)
        )
    config = window_config(metadata, kernel_length, stride, filter_energy)
    engine = CleaningEngine(module, config, batch_size=8, device=device)
    window = torch.zeros(
        1, len(metadata["witnesses"]), config.kernel_size, device=device
    )
    with torch.no_grad():
        # TorchScript optimises a shape on its first calls: make them
        # here, not on the first live frames
        for _ in range(3):
            prediction = module(window)
    if prediction.shape != (1, config.kernel_size) or not bool(
        torch.isfinite(prediction).all()
    ):
        raise ValueError(
            f"model version {metadata.get('version')} in {model_dir} "
            "predicts a non-finite or misshapen test window"
        )
    return LoadedModel(
        version=metadata.get("version"),
        metadata=metadata,
        engine=engine,
        cleaner=engine.stream(),
        classical=None
        if classical is None
        else NomadEstimates(
            classical,
            len(metadata["witnesses"]),
            config.sample_rate,
            config.bands,
        ),
    )


class InBandGate:
    """Running in-band ASD ratio of cleaned to raw strain.

    Each second contributes its in-band power (a Hann-windowed
    periodogram summed over the bands' bins), so the ratio over the last
    seconds is ``sqrt(sum cleaned power / sum raw power)``: an averaged
    (Bartlett) estimate at 1 Hz resolution, two 1 s FFTs per second.

    Args:
        bands: ``(low, high)`` bands, Hz.
        sample_rate: Hz.
        length: seconds the ratio is measured over.
    """

    def __init__(
        self,
        bands: Sequence[tuple[float, float]],
        sample_rate: float,
        length: float,
    ) -> None:
        self.sample_rate = sample_rate
        self.seconds = max(1, round(length))
        self._powers: deque[tuple[float, float]] = deque(maxlen=self.seconds)
        self.reset(bands)

    def reset(self, bands: Sequence[tuple[float, float]]) -> None:
        """Forget the history (a new model may clean other bands)."""
        self.bands = bands
        self._powers.clear()
        self._window: np.ndarray | None = None

    def update(self, raw: np.ndarray, cleaned: np.ndarray) -> float | None:
        """Add a cleaned second; return the ratio over the kept seconds
        (None until half of them are there)."""
        self._powers.append((self._power(raw), self._power(cleaned)))
        if 2 * len(self._powers) < self.seconds:
            return None
        raw_power = sum(raw for raw, _ in self._powers)
        cleaned_power = sum(cleaned for _, cleaned in self._powers)
        if raw_power <= 0:
            return None
        return math.sqrt(cleaned_power / raw_power)

    def _power(self, series: np.ndarray) -> float:
        if self._window is None or len(self._window) != len(series):
            frequencies = np.fft.rfftfreq(len(series), 1 / self.sample_rate)
            inside = np.zeros(len(frequencies), bool)
            for low, high in self.bands:
                inside |= (frequencies >= low) & (frequencies <= high)
            self._window = np.hanning(len(series))
            self._inside = inside
        spectrum = np.fft.rfft(series * self._window)
        return float(np.sum(np.abs(spectrum[self._inside]) ** 2))


class FrameLog:
    """One JSON line per output second, to a stream and a file."""

    def __init__(self, stream: TextIO | None, path: Path | None) -> None:
        self.stream = stream
        self.path = Path(path) if path else None

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"))
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        if self.path is not None:
            with open(self.path, "a") as log:
                log.write(line + "\n")


@dataclass
class OnlineCleaner:
    """The loop of :func:`online` (see there for the attributes not
    described here).

    Attributes:
        source: reads the input frames.
        model: the model cleaning now.
        log: the JSON frame log.
    """

    source: FrameSource
    model_dir: Path
    output_dir: Path
    model: LoadedModel
    log: FrameLog
    channel_suffix: str = "_DC"
    gate_length: float = 16.0
    keep: float | None = None
    device: str = "cpu"
    kernel_length: float | None = None
    stride: float | None = None
    filter_energy: float | None = None
    retry_interval: float = 5.0

    def __post_init__(self) -> None:
        self.gate = InBandGate(
            self.model.engine.config.bands,
            self.source.sample_rate,
            self.gate_length,
        )
        self.history: deque[InputSecond] = deque(maxlen=HISTORY_SECONDS)
        self.summary = OnlineSummary(model_versions=[self.model.version])
        self.model_changed = False
        self._rejected: Any = None

    def run(self, start: int, end: int | None) -> OnlineSummary:
        """Clean from output second ``start`` to ``end`` (inclusive; None:
        forever)."""
        output = start
        gps = start - self.model.context_seconds()
        while end is None or output <= end:
            output = self.check_for_new_model(output, end)
            second = self.source.read(
                gps, self.model.witnesses, wait=gps >= start
            )
            self.source.report_late_frames()
            self.history.append(second)
            output = self.push(second, output, end)
            gps += 1
        return self.summary

    def push(self, second: InputSecond, output: int, end: int | None) -> int:
        """Clean with ``second`` added; write every output second that
        became possible; return the next output second."""
        import torch

        began = time.perf_counter()
        segment = self.model.cleaner.push(
            torch.from_numpy(second.strain),
            torch.from_numpy(second.witnesses),
            float(second.gps),
            self.model.prior(second),
        )
        compute = time.perf_counter() - began
        if segment is None:
            return output
        frames = segment.frames()
        for frame in frames:
            gps = round(frame.t0)
            if gps < output or (end is not None and gps > end):
                continue
            while output < gps:
                self.write_uncleaned(output)
                output += 1
            self.write(frame, compute / len(frames))
            output += 1
        return output

    def _input(self, gps: int) -> InputSecond | None:
        for second in reversed(self.history):
            if second.gps == gps:
                return second
        return None

    def _context_flags(self, gps: int) -> State:
        """Flags from the input seconds an output second depends on."""
        start, stop = self.model.engine.required_span(
            float(gps), float(gps + FRAME_LENGTH)
        )
        flags = State(0)
        for second in self.history:
            if start - 1 < second.gps < stop and second.witness_missing:
                flags |= State.WITNESS_MISSING
        own = self._input(gps)
        if own is None or own.strain_missing:
            flags |= State.STRAIN_MISSING | State.STRAIN_NOT_READY
        elif not own.ready:
            flags |= State.STRAIN_NOT_READY
        return flags

    def write_uncleaned(self, gps: int) -> None:
        """Output second ``gps`` with the raw strain (no prediction)."""
        own = self._input(gps)
        size = round(self.source.sample_rate * FRAME_LENGTH)
        raw = own.strain if own is not None else np.full(size, np.nan)
        self._write(gps, raw, raw, self._context_flags(gps), 0.0)

    def write(self, frame: CleanedSegment, compute: float) -> None:
        """Output one cleaned second."""
        gps = round(frame.t0)
        flags = self._context_flags(gps)
        raw = frame.raw.cpu().numpy()
        cleaned = frame.cleaned.cpu().numpy()
        if not bool(frame.flagged[0]):
            flags |= State.CLEANED
        if self.model_changed and flags & State.CLEANED:
            flags |= State.MODEL_CHANGED
            self.model_changed = False
        self._write(gps, raw, cleaned, flags, compute)

    def _write(
        self,
        gps: int,
        raw: np.ndarray,
        cleaned: np.ndarray,
        flags: State,
        compute: float,
    ) -> None:
        from deepclean_io.gwf import frame_name, prune_frames, write_gwf

        began = time.perf_counter()
        raw = np.where(np.isfinite(raw), raw, 0.0)
        cleaned = np.where(np.isfinite(cleaned), cleaned, 0.0)
        ratio = None
        if flags & State.CLEANED:
            ratio = self.gate.update(raw, cleaned)
        gate_on = (
            ratio is not None
            and ratio < 1
            and flags & State.CLEANED
            and not flags & State.STRAIN_NOT_READY
        )
        if not gate_on:
            flags |= State.GATED_OFF
        strain = self.source.strain_channel
        name = f"{strain}{self.channel_suffix}"
        channels = {
            name: cleaned,
            f"{name}_GATED": cleaned if gate_on else raw,
            f"{name}_STATE": np.full(len(raw), int(flags), np.uint32),
        }
        path = frame_name(
            self.output_dir, self.source.ifo, OUTPUT_TAG, gps, FRAME_LENGTH
        )
        while True:
            try:
                write_gwf(
                    path,
                    channels,
                    float(gps),
                    self.source.sample_rate,
                    units={name: "strain", f"{name}_GATED": "strain"},
                )
                break
            except OSError as error:
                logger.error(
                    "GPS %d: cannot write %s (%s); retrying in %g s",
                    gps,
                    path,
                    error,
                    self.retry_interval,
                )
                self.source.sleep(self.retry_interval)
        written = self.source.clock()
        own = self._input(gps)
        self.log.write(
            {
                "gps": gps,
                "compute_ms": round(
                    1e3 * (compute + time.perf_counter() - began), 3
                ),
                "read_ms": round(1e3 * own.read_seconds, 3) if own else None,
                "latency_s": (
                    round(written - own.arrival, 4)
                    if own is not None and own.arrival is not None
                    else None
                ),
                "in_band_ratio": None if ratio is None else round(ratio, 5),
                "model_version": self.model.version,
                "state": int(flags),
                "flags": [flag.name for flag in State if flag & flags],
            }
        )
        summary = self.summary
        summary.first = gps if summary.first is None else summary.first
        summary.last = gps
        summary.frames += 1
        summary.cleaned += bool(flags & State.CLEANED)
        if self.keep is not None:
            prune_frames(
                self.output_dir,
                self.source.ifo,
                (OUTPUT_TAG,),
                self.keep,
                gps + FRAME_LENGTH,
            )

    def check_for_new_model(self, output: int, end: int | None) -> int:
        """Switch to a newly published, valid model at this frame
        boundary, warmed up on the buffered input (writing the seconds
        from ``output`` on that it cleans while warming up).

        Returns:
            The next output second.
        """
        from deepclean_engine.exported import read_publication

        try:
            record = read_publication(self.model_dir)
        except ValueError as error:
            self._reject(("unreadable", str(error)), error)
            return output
        if record is None:
            return output
        version = record["version"]
        if version == self.model.version or version == self._rejected:
            return output
        try:
            candidate = load_model(
                self.model_dir,
                self.source.strain_channel,
                self.source.sample_rate,
                self.source.witness_channels or None,
                self.device,
                self.kernel_length,
                self.stride,
                self.filter_energy,
            )
        except (OSError, ValueError, RuntimeError) as error:
            self._reject(version, error)
            return output
        if candidate is None:
            return output
        needed = candidate.context_seconds()
        if self.history and self.history[0].gps > output - needed:
            logger.warning(
                "model version %s needs %d s of buffered input before GPS "
                "%d; switching once it is there",
                version,
                needed,
                output,
            )
            return output
        logger.info(
            "GPS %d: switching from model version %s to %s",
            output,
            self.model.version,
            version,
        )
        self.model = candidate
        self.model_changed = True
        self.gate.reset(candidate.engine.config.bands)
        self.summary.model_versions.append(version)
        for second in list(self.history):
            if second.gps >= output - needed:
                output = self.push(second, output, end)
        return output

    def _reject(self, version: Any, error: Exception) -> None:
        if version != self._rejected:
            logger.error(
                "keeping model version %s: the published model is not "
                "usable: %s",
                self.model.version,
                error,
            )
        self._rejected = version


def online(
    strain_dir: Path,
    model_dir: Path,
    output_dir: Path,
    witness_dir: Path | None = None,
    start: int | None = None,
    end: int | None = None,
    channel_suffix: str = "_DC",
    state_mask: int = 3,
    gate_length: float = 16.0,
    wait_limit: float = 5.0,
    poll_interval: float = 0.02,
    retry_interval: float = 5.0,
    keep: float | None = None,
    kernel_length: float | None = None,
    stride: float | None = None,
    filter_energy: float | None = 0.9995,
    device: str = "cpu",
    threads: int | None = None,
    log_file: Path | None = None,
    summary: Path | None = None,
) -> OnlineSummary:
    """Clean live 1 s frames as they arrive.

    Args:
        strain_dir: folder of ``{obs}-{ifo}_llhoft-{gps}-1.gwf`` frames
            (strain and state vector).
        model_dir: folder models are published into
            (``deepclean-train publish``); new versions are picked up
            between frames.
        output_dir: folder of the output frames (created).
        witness_dir: folder of ``..._lldetchar-{gps}-1.gwf`` frames; the
            strain folder when None.
        start: first GPS second to clean; by default the second after the
            newest output frame, else the newest strain frame.
        end: last GPS second to clean (replays, tests, backfills); None
            runs until stopped.
        channel_suffix: output channels are ``{strain}{suffix}``,
            ``..._GATED`` and ``..._STATE``.
        state_mask: state-vector bits that mean analysis-ready (all must
            be set: ``(x & mask) == mask``).
        gate_length: seconds of the running in-band ASD ratio that gates
            ``..._GATED``.
        wait_limit: seconds to wait for a frame (and retry a truncated
            one) before filling it.
        poll_interval: seconds between looks for a frame.
        retry_interval: seconds between attempts to write an output
            frame that failed (disk full).
        keep: delete output frames older than this many seconds.
        kernel_length: prediction window instead of the model's, s.
        stride: window stride instead of the model's, s.
        filter_energy: fraction of the band-pass kernel's energy inside
            each frame's padding (None: the model's, 0.99999). The
            padding sets the look-ahead: 0.9995 pads 55-65 Hz by 0.46 s
            instead of 0.78 s, so the reference model cleans a second
            once the next one has arrived (1 s instead of 2 s), with the
            subtracted noise 0.3 % RMS from the model's padding and the
            same in-band ASD ratio (``benchmarks/latency.py``).
        device: ``cpu`` or ``cuda:N``.
        threads: torch CPU threads; by default the cores other processes
            leave free (:func:`deepclean_engine.threads.choose_threads`).
        log_file: also append the JSON frame log to this file.
        summary: write the run's :class:`OnlineSummary` here as JSON when
            ``end`` has been cleaned (atomically: its existence means the
            run finished).

    Returns:
        What was written.

    Raises:
        FileNotFoundError: a missing input or model folder, or no model
            published.
        ValueError: a model that does not load or does not fit the
            frames.
        PermissionError: an output folder that cannot be written.
    """

    from deepclean_engine.threads import configure_threads
    from deepclean_io.atomic import (
        check_writable,
        remove_stale_partials,
        write_json_atomic,
    )

    strain_dir = Path(strain_dir)
    witness_dir = Path(witness_dir) if witness_dir else strain_dir
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    for label, folder in (
        ("strain", strain_dir),
        ("witness", witness_dir),
        ("model", model_dir),
    ):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{label} folder {folder} does not exist; check the path"
            )
    configure_threads(threads)
    model = load_model(
        model_dir,
        None,
        None,
        None,
        device,
        kernel_length,
        stride,
        filter_energy,
    )
    if model is None:
        raise FileNotFoundError(
            f"no model is published in {model_dir} (or its model.json does "
            "not match its model.pt); publish one with `deepclean-train "
            f"publish MODEL --model_dir {model_dir}`"
        )
    metadata = model.metadata
    source = FrameSource(
        strain_dir,
        witness_dir,
        metadata["strain_channel"],
        float(metadata["sample_rate"]),
        state_mask,
        wait_limit,
        poll_interval,
    )
    _check_frames_fit(source, model)
    check_writable(output_dir, "--output_dir")
    remove_stale_partials(output_dir)
    if start is None:
        start = _default_start(source, output_dir)
    cleaner = OnlineCleaner(
        source,
        model_dir,
        output_dir,
        model,
        FrameLog(sys.stdout, log_file),
        channel_suffix,
        gate_length,
        keep,
        device,
        kernel_length,
        stride,
        filter_energy,
        retry_interval,
    )
    result = cleaner.run(start, end)
    if summary is not None:
        write_json_atomic(summary, asdict(result))
    return result


def _check_frames_fit(source: FrameSource, model: LoadedModel) -> None:
    """Refuse a model whose channels or rate the newest frames lack."""
    from deepclean_io.gwf import gwf_channels, read_gwf

    newest = source.newest_gps()
    if newest is None:
        return
    strain_path = source.strain_path(newest)
    witness_path = source.witness_path(newest)
    try:
        strain_channels = set(gwf_channels(strain_path))
        witness_channels = set(gwf_channels(witness_path))
    except (OSError, ValueError):
        return
    absent = sorted(
        {source.strain_channel} - strain_channels
        | set(model.witnesses) - witness_channels
    )
    if absent:
        raise ValueError(
            f"the model's channels {absent} are not in the newest frames "
            f"({strain_path.name}, {witness_path.name}); publish a model "
            "trained on the channels the frames hold, or check "
            "--strain_dir and --witness_dir"
        )
    _, _, sample_rate = read_gwf(strain_path, [source.strain_channel])
    if sample_rate != source.sample_rate:
        raise ValueError(
            f"{strain_path.name} is sampled at {sample_rate:g} Hz but the "
            f"model at {source.sample_rate:g} Hz"
        )
    source.witness_channels = witness_channels


def _default_start(source: FrameSource, output_dir: Path) -> int:
    """The second after the newest output frame, else the newest input
    frame (waiting for one to appear)."""
    from deepclean_io.gwf import newest_frame

    written = newest_frame(output_dir, source.ifo, OUTPUT_TAG)
    if written is not None:
        return written + FRAME_LENGTH
    while (newest := source.newest_gps()) is None:
        source.sleep(source.poll_interval)
    return newest
