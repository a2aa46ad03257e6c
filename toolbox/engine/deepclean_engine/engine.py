"""The cleaning engine: witness windows -> predicted noise -> cleaned strain.

One implementation serves training validation and offline cleaning
(:meth:`CleaningEngine.clean`, a whole span at once) and online cleaning
(:class:`FrameCleaner`, one chunk at a time). Both place windows and
frames on grids fixed in GPS time, so a frame's output depends only on
the data around it, never on where processing started:

- window ``k`` covers samples ``[k * S, k * S + K)`` (absolute sample
  index ``round(gps * sample_rate)``, ``S`` the stride, ``K`` the kernel);
- its prediction, in strain units, is weighted by
  :func:`~deepclean_engine.stitching.stitch_window` and overlap-added into
  a continuous noise series, which is final where every window with a
  non-zero weight there has been predicted;
- frame ``f`` covers ``[f * F, (f + 1) * F)``; its noise plus ``P`` samples
  of padding on both sides is band-passed (zero phase), cropped to the
  frame and subtracted from the raw strain.

A *prior* noise estimate from another method (the hybrid's classical
stage, e.g. NOMAD's), given for the same samples as the strain, is added
to the stitched prediction before the band-pass: each frame then
subtracts ``bandpass(prediction + prior)``.

A frame whose band-passed noise is not finite (NaN witnesses, say) or
whose raw strain is not finite passes the raw strain through, has zero
noise and is flagged; the caller tells the two apart from ``raw``.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepclean_engine.config import CleaningConfig, whole_samples
from deepclean_engine.exported import load_exported_model
from deepclean_engine.filters import BandpassFilter
from deepclean_engine.stitching import overlap_add, stitch_window

NoiseModel = Callable[[torch.Tensor], torch.Tensor]


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@contextlib.contextmanager
def _inference(model: NoiseModel) -> Iterator[None]:
    """No autograd, and a module in training mode switched to eval.

    Modules made by ``torch.export`` report ``training`` but refuse
    ``eval()``: their mode was fixed when they were exported.
    """
    switch = isinstance(model, torch.nn.Module) and model.training
    if switch:
        try:
            model.eval()
        except NotImplementedError:
            switch = False
    try:
        with torch.no_grad():
            yield
    finally:
        if switch:
            model.train()


@dataclass(frozen=True)
class CleanedSegment:
    """Contiguous whole frames of cleaned strain.

    Attributes:
        t0: GPS time of the first sample, s.
        sample_rate: Hz.
        frame_length: s.
        cleaned: ``raw - noise``, shape ``(time,)``, dtype of the raw
            strain.
        noise: band-passed predicted noise in strain units, ``(time,)``.
        raw: the raw strain of the same samples, ``(time,)``.
        flagged: ``(frames,)`` bool; True where the prediction or the
            raw strain was not finite and the raw strain was passed
            through (with zero noise).
    """

    t0: float
    sample_rate: float
    frame_length: float
    cleaned: torch.Tensor
    noise: torch.Tensor
    raw: torch.Tensor
    flagged: torch.Tensor

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.cleaned.shape[-1] / self.sample_rate

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return self.flagged.shape[0]

    def frames(self) -> list["CleanedSegment"]:
        """Split into one segment per frame (views, no copies)."""
        size = self.cleaned.shape[-1] // self.num_frames
        return [
            CleanedSegment(
                t0=self.t0 + index * self.frame_length,
                sample_rate=self.sample_rate,
                frame_length=self.frame_length,
                cleaned=self.cleaned[index * size : (index + 1) * size],
                noise=self.noise[index * size : (index + 1) * size],
                raw=self.raw[index * size : (index + 1) * size],
                flagged=self.flagged[index : index + 1],
            )
            for index in range(self.num_frames)
        ]


class CleaningEngine:
    """Clean strain with a noise-predicting model.

    Args:
        model: callable mapping witness windows ``(batch, channels,
            kernel_size)`` in witness units to predicted coupled noise
            ``(batch, kernel_size)`` in strain units (scaling included).
            It must already be on the compute device. A model with a
            method ``forward_span(witnesses, kernel, stride)`` (span
            ``(channels, time)`` -> ``(windows, kernel_size)``, the same
            as calling the model on the span's windows) is given whole
            spans of windows instead, which saves the window copies and
            lets it share work between overlapping windows (the
            exported :class:`~deepclean_train.predictor.NoisePredictor`
            decimates each span once). An ``nn.Module`` in
            training mode is switched to eval for each call and back.
            Assign ``engine.model`` to hot-swap a model with the same
            config.
        config: cleaning parameters (from the model's metadata).
        batch_size: windows per model call, and frames per filter call.
        device: compute device; ``None`` uses the device of the strain
            passed in. Inputs are moved there; outputs stay there.
    """

    def __init__(
        self,
        model: NoiseModel,
        config: CleaningConfig,
        batch_size: int = 64,
        device: torch.device | str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.config = config
        self.batch_size = batch_size
        self.device = None if device is None else torch.device(device)
        self.weights = stitch_window(config)
        self.bandpass = BandpassFilter(
            config.bands, config.sample_rate, config.filter_order
        )

    def sample_index(self, gps: float) -> int:
        """Absolute sample index ``gps * sample_rate`` (must be whole)."""
        return whole_samples("t0", gps, self.config.sample_rate)

    def required_span(self, start: float, end: float) -> tuple[float, float]:
        """GPS span of data that :meth:`clean` needs for ``[start, end)``.

        Args:
            start: GPS start of the strain to clean, s.
            end: GPS end, s.

        Returns:
            ``(data_start, data_end)``: given strain and witnesses over
            this span, :meth:`clean` returns every frame that overlaps
            ``[start, end)`` (possibly more frames).
        """
        config = self.config
        frame, stride, pad = (
            config.frame_size,
            config.stride_size,
            config.pad_size,
        )
        first, last = config.stitch_support
        first_frame = self.sample_index(start) // frame
        end_frame = _ceil_div(self.sample_index(end), frame)
        first_window = (first_frame * frame - pad - last) // stride + 1
        last_window = _ceil_div(end_frame * frame + pad - first, stride) - 1
        return (
            first_window * stride / config.sample_rate,
            (last_window * stride + config.kernel_size) / config.sample_rate,
        )

    def clean(
        self,
        strain: torch.Tensor,
        witnesses: torch.Tensor,
        t0: float,
        prior: torch.Tensor | None = None,
    ) -> CleanedSegment:
        """Clean a contiguous span in one pass.

        The output holds every whole frame whose padded noise lies inside
        the span; at the start the first window on the grid plus the
        discarded part of its prediction plus ``filter_pad``, and at the
        end the same on the other side, cannot be cleaned (use
        :meth:`required_span` to fetch enough data around a target span).

        Args:
            strain: raw strain, shape ``(time,)``.
            witnesses: witnesses, shape ``(channels, time)``, same
                samples as ``strain``.
            t0: GPS time of the first sample, s.
            prior: noise already estimated by another method, strain
                units, shape ``(time,)``, same samples as ``strain``;
                added to the prediction before the band-pass.

        Returns:
            The cleaned frames.

        Raises:
            ValueError: mismatched shapes, or a span too short for one
                frame.
        """
        strain, witnesses = self._check_inputs(strain, witnesses)
        prior = self._check_prior(prior, strain)
        config = self.config
        start = self.sample_index(t0)
        stride, kernel = config.stride_size, config.kernel_size
        first_window = _ceil_div(start, stride)
        last_window = (start + strain.shape[-1] - kernel) // stride
        num_windows = last_window - first_window + 1
        segment = None
        if num_windows > 0:
            predictions = self._predict(
                witnesses, first_window * stride - start, num_windows
            )
            noise, noise_start = self._stitch(
                predictions.to(strain.dtype), first_window
            )
            if prior is not None:
                noise = _add_prior(noise, noise_start, prior, start)
            first_frame = _ceil_div(
                noise_start + config.pad_size, config.frame_size
            )
            segment = self._clean_frames(
                noise, noise_start, strain, start, first_frame
            )
        if segment is None:
            data_start, data_end = self.required_span(0.0, config.frame_length)
            raise ValueError(
                f"{strain.shape[-1] / config.sample_rate} s of data cannot "
                "yield one whole cleaned frame with this config; one frame "
                f"needs at least {data_end - data_start} s of data (kernel, "
                "discarded prediction edges and filter_pad around it)"
            )
        return segment

    def stream(self) -> "FrameCleaner":
        """A stateful cleaner for data that arrives chunk by chunk."""
        return FrameCleaner(self)

    def _check_inputs(
        self, strain: torch.Tensor, witnesses: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if strain.ndim != 1:
            raise ValueError(
                f"strain must have shape (time,), got {tuple(strain.shape)}"
            )
        if witnesses.ndim != 2 or witnesses.shape[-1] != strain.shape[-1]:
            raise ValueError(
                "witnesses must have shape (channels, time) with the "
                f"strain's {strain.shape[-1]} samples, got "
                f"{tuple(witnesses.shape)}"
            )
        if not strain.is_floating_point():
            raise TypeError(f"strain must be floating point: {strain.dtype}")
        device = strain.device if self.device is None else self.device
        return strain.to(device), witnesses.to(device)

    def _check_prior(
        self, prior: torch.Tensor | None, strain: torch.Tensor
    ) -> torch.Tensor | None:
        if prior is None:
            return None
        if prior.shape != strain.shape:
            raise ValueError(
                f"prior must have the strain's shape {tuple(strain.shape)}, "
                f"got {tuple(prior.shape)}"
            )
        return prior.to(strain.device, strain.dtype)

    def _predict(
        self, witnesses: torch.Tensor, offset: int, num_windows: int
    ) -> torch.Tensor:
        """Predict ``num_windows`` windows starting ``offset`` samples in.

        A model with a ``forward_span`` method (exported models since the
        span entry point) gets the span of each batch of windows once;
        any other is called on copies of the windows.

        Returns:
            Predicted noise, shape ``(num_windows, kernel_size)``.
        """
        kernel, stride = self.config.kernel_size, self.config.stride_size
        span = witnesses[
            :, offset : offset + (num_windows - 1) * stride + kernel
        ]
        forward_span = getattr(self.model, "forward_span", None)
        windows = span.unfold(-1, kernel, stride).transpose(0, 1)
        predictions = []
        with _inference(self.model):
            for begin in range(0, num_windows, self.batch_size):
                count = min(self.batch_size, num_windows - begin)
                if forward_span is None:
                    batch = windows[begin : begin + count].contiguous()
                    prediction = self.model(batch)
                else:
                    first = begin * stride
                    batch = span[
                        :, first : first + (count - 1) * stride + kernel
                    ]
                    prediction = forward_span(batch, kernel, stride)
                if prediction.shape != (count, kernel):
                    shape = (count, *windows.shape[1:])
                    raise ValueError(
                        f"the model returned shape {tuple(prediction.shape)}"
                        f" for windows of shape {shape}; a noise model "
                        f"must return (batch, {kernel})"
                    )
                predictions.append(prediction)
        return torch.cat(predictions)

    def _stitch(
        self, predictions: torch.Tensor, first_window: int
    ) -> tuple[torch.Tensor, int]:
        """Overlap-add predictions of windows from ``first_window`` on.

        Returns:
            The final part of the noise series (every covering window
            present) and the absolute sample index of its first sample.
        """
        stride = self.config.stride_size
        first, last = self.config.stitch_support
        weights = self.weights.to(predictions.device, predictions.dtype)
        noise = overlap_add(predictions, weights, stride)
        final = noise[last - stride : predictions.shape[0] * stride + first]
        return final, self._noise_start(first_window)

    def _noise_start(self, first_window: int) -> int:
        """Absolute sample index of the first final noise sample when
        predictions start at window ``first_window``."""
        _, last = self.config.stitch_support
        return (first_window - 1) * self.config.stride_size + last

    def _clean_frames(
        self,
        noise: torch.Tensor,
        noise_start: int,
        strain: torch.Tensor,
        strain_start: int,
        first_frame: int,
    ) -> CleanedSegment | None:
        """Band-pass and subtract every frame from ``first_frame`` on.

        Frames are cleaned while their padded noise lies inside ``noise``
        and their strain inside ``strain``; ``None`` when there is none.
        """
        config = self.config
        frame, pad = config.frame_size, config.pad_size
        end_frame = min(
            (noise_start + noise.shape[-1] - pad) // frame,
            (strain_start + strain.shape[-1]) // frame,
        )
        num_frames = end_frame - first_frame
        if num_frames <= 0:
            return None
        self.bandpass.to(noise.device)
        begin = first_frame * frame - pad - noise_start
        segments = noise[begin : begin + num_frames * frame + 2 * pad].unfold(
            -1, frame + 2 * pad, frame
        )
        filtered = torch.cat(
            [
                self.bandpass(segments[index : index + self.batch_size])[
                    :, pad : pad + frame
                ]
                for index in range(0, num_frames, self.batch_size)
            ]
        )
        offset = first_frame * frame - strain_start
        raw = strain[offset : offset + num_frames * frame]
        flagged = ~(
            torch.isfinite(filtered).all(dim=-1)
            & torch.isfinite(raw.reshape(num_frames, frame)).all(dim=-1)
        )
        filtered = filtered.masked_fill(flagged[:, None], 0)
        noise_frames = filtered.reshape(-1)
        return CleanedSegment(
            t0=first_frame * frame / config.sample_rate,
            sample_rate=config.sample_rate,
            frame_length=config.frame_length,
            cleaned=raw - noise_frames,
            noise=noise_frames,
            raw=raw,
            flagged=flagged,
        )


def _add_prior(
    noise: torch.Tensor, noise_start: int, prior: torch.Tensor, start: int
) -> torch.Tensor:
    """``noise`` plus the samples of ``prior`` (which starts at absolute
    sample ``start`` and covers every sample of ``noise``)."""
    offset = noise_start - start
    if offset < 0 or offset + noise.shape[-1] > prior.shape[-1]:
        raise ValueError(
            f"the prior covers samples [{start}, {start + prior.shape[-1]})"
            f" but the noise needs [{noise_start}, "
            f"{noise_start + noise.shape[-1]})"
        )
    return noise + prior[offset : offset + noise.shape[-1]]


class FrameCleaner:
    """Streaming cleaner: push contiguous chunks, get cleaned frames.

    Keeps the witnesses of windows not yet predicted, the predictions
    still needed for padding, and the raw strain of frames not yet
    emitted. Output equals :meth:`CleaningEngine.clean` on the same data
    (same windows, weights and padded frames). With chunks of
    ``frame_length`` on the frame grid, a frame is emitted
    ``config.streaming_latency`` s after its end.

    Args:
        engine: the engine whose model and config are used.
    """

    def __init__(self, engine: CleaningEngine) -> None:
        self.engine = engine
        self.reset()

    @property
    def latency(self) -> float:
        """Seconds from a frame's end to its emission (frame-sized input)."""
        return self.engine.config.streaming_latency

    def reset(self) -> None:
        """Forget all buffered data (e.g. after a gap)."""
        self._next_sample: int | None = None
        self._witnesses = torch.empty(0)
        self._witness_start = 0
        self._strain = torch.empty(0)
        self._strain_start = 0
        self._prior: torch.Tensor | None = None
        self._prior_start = 0
        self._predictions = torch.empty(0)
        self._first_window = 0
        self._next_window = 0
        self._next_frame = 0

    def push(
        self,
        strain: torch.Tensor,
        witnesses: torch.Tensor,
        t0: float,
        prior: torch.Tensor | None = None,
    ) -> CleanedSegment | None:
        """Add a chunk and clean every frame that has become possible.

        Args:
            strain: raw strain, shape ``(time,)``.
            witnesses: witnesses, shape ``(channels, time)``.
            t0: GPS time of the chunk's first sample; must follow the
                previous chunk without gap or overlap.
            prior: another method's noise estimate of the chunk, shape
                ``(time,)`` (see :meth:`CleaningEngine.clean`); given
                with every chunk of a stream or with none.

        Returns:
            The newly cleaned frames, or ``None`` while waiting for data.
        """
        engine, config = self.engine, self.engine.config
        strain, witnesses = engine._check_inputs(strain, witnesses)
        prior = engine._check_prior(prior, strain)
        start = engine.sample_index(t0)
        stride, kernel = config.stride_size, config.kernel_size
        if self._next_sample is not None and (prior is None) != (
            self._prior is None
        ):
            raise ValueError(
                "give a prior with every chunk of a stream or with none; "
                "call reset() to start a new stretch"
            )
        if self._next_sample is None:
            self._start(strain, witnesses, start)
            self._prior, self._prior_start = prior, start
        elif start != self._next_sample:
            raise ValueError(
                f"expected a chunk starting at GPS "
                f"{self._next_sample / config.sample_rate}, got {t0}: the "
                "stream has a gap or overlap; call reset() to start a new "
                "stretch"
            )
        else:
            self._witnesses = torch.cat([self._witnesses, witnesses], dim=-1)
            self._strain = torch.cat([self._strain, strain])
            if prior is not None:
                self._prior = torch.cat([self._prior, prior])
        self._next_sample = start + strain.shape[-1]

        last_window = (self._next_sample - kernel) // stride
        num_windows = last_window - self._next_window + 1
        if num_windows > 0:
            predictions = engine._predict(
                self._witnesses,
                self._next_window * stride - self._witness_start,
                num_windows,
            )
            self._predictions = torch.cat(
                [self._predictions, predictions.to(self._strain.dtype)]
            )
            self._next_window = last_window + 1
            drop = self._next_window * stride - self._witness_start
            self._witnesses = self._witnesses[:, drop:]
            self._witness_start += drop
        if self._predictions.shape[0] == 0:
            return None

        noise, noise_start = engine._stitch(
            self._predictions, self._first_window
        )
        if self._prior is not None:
            noise = _add_prior(
                noise, noise_start, self._prior, self._prior_start
            )
        segment = engine._clean_frames(
            noise,
            noise_start,
            self._strain,
            self._strain_start,
            self._next_frame,
        )
        if segment is not None:
            self._next_frame += segment.num_frames
            self._trim()
        return segment

    def _start(
        self, strain: torch.Tensor, witnesses: torch.Tensor, start: int
    ) -> None:
        config = self.engine.config
        stride = config.stride_size
        self._witnesses, self._witness_start = witnesses, start
        self._strain, self._strain_start = strain, start
        self._first_window = _ceil_div(start, stride)
        self._next_window = self._first_window
        self._predictions = torch.empty(
            0, config.kernel_size, dtype=strain.dtype, device=strain.device
        )
        noise_start = self.engine._noise_start(self._first_window)
        self._next_frame = _ceil_div(
            noise_start + config.pad_size, config.frame_size
        )

    def _trim(self) -> None:
        """Drop predictions and strain no later frame needs."""
        config = self.engine.config
        frame, stride = config.frame_size, config.stride_size
        _, last = config.stitch_support
        frame_start = self._next_frame * frame
        keep_window = (frame_start - config.pad_size - last) // stride + 1
        drop = max(0, keep_window - self._first_window)
        self._predictions = self._predictions[drop:]
        self._first_window += drop
        drop = max(0, frame_start - self._strain_start)
        self._strain = self._strain[drop:]
        self._strain_start += drop
        if self._prior is not None:
            noise_start = self.engine._noise_start(self._first_window)
            drop = max(0, noise_start - self._prior_start)
            self._prior = self._prior[drop:]
            self._prior_start += drop


def load_cleaning_engine(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[CleaningEngine, dict[str, Any]]:
    """An exported model's cleaning engine, with the cleaning parameters
    its metadata records.

    Args:
        path: an exported ``model.pt``.
        device: device to load the model onto.

    Returns:
        ``(engine, metadata)``.
    """
    module, metadata = load_exported_model(path, device)
    return (
        CleaningEngine(module, CleaningConfig.from_dict(metadata["cleaning"])),
        metadata,
    )
