"""Deterministic random noise on a fixed grid of GPS blocks.

GPS time is cut into blocks ``[k * B, (k + 1) * B)`` of a fixed duration
``B``. The white noise of a stream in block ``k`` comes from a generator
seeded by ``(seed, stream key, k)`` only, and coloured noise in block
``k`` is the exact linear convolution of a FIR with the white noise of
blocks ``k - 1`` and ``k`` (overlap-save). So any sample is a
deterministic function of the seed and its GPS time: spans computed
separately join bit for bit, with no discontinuity at block edges.
"""

import zlib
from concurrent.futures import Executor
from fractions import Fraction

import numpy as np
from numpy.typing import DTypeLike
from scipy import fft as sp_fft

_INDEX_MODULUS = 2**64
# Streams that ColouredNoise draws and filters at once: bounds its FFT
# buffers to a few blocks of this many streams, however many there are.
_STREAMS_PER_FFT = 16


def stream_key(*parts: str) -> int:
    """Stable integer key of a named stream (e.g. role and channel)."""
    return zlib.crc32(":".join(parts).encode())


def block_rng(seed: int, key: int, index: int) -> np.random.Generator:
    """Generator for one stream in one block (``index`` may be < 0)."""
    return np.random.default_rng([seed, key, index % _INDEX_MODULUS])


def parameter_rng(seed: int, *parts: str) -> np.random.Generator:
    """Generator for the fixed parameters of a named part."""
    return np.random.default_rng([seed, stream_key(*parts)])


def turns_at(frequency: float, gps: float) -> float:
    """``frequency * gps`` modulo 1, reduced exactly (as fractions).

    Keeps the phase of a sinusoid accurate at GPS times ~1e9 s.
    """
    return float((Fraction(frequency) * Fraction(gps)) % 1)


def cycles(frequency: float, gps: float, offsets: np.ndarray) -> np.ndarray:
    """Cycles elapsed since GPS 0 of a sinusoid, modulo 1 at ``gps``.

    Args:
        frequency: Hz.
        gps: GPS time of the block start, s.
        offsets: Seconds after ``gps``, shape ``(time,)``.

    Returns:
        Cycles in ``[0, 1 + frequency * max(offsets))``, shape ``(time,)``.
    """
    return turns_at(frequency, gps) + frequency * offsets


def white_noise(
    seed: int,
    keys: list[int],
    index: int,
    num_samples: int,
    dtype: DTypeLike = np.float32,
    executor: Executor | None = None,
) -> np.ndarray:
    """Unit-variance Gaussian white noise of several streams in one block.

    Args:
        seed: Simulation seed.
        keys: One stream key per stream.
        index: Block index.
        num_samples: Samples per block.
        dtype: Floating dtype.
        executor: Fills streams in parallel threads when given (numpy's
            generators release the GIL).

    Returns:
        Shape ``(streams, num_samples)``.
    """
    noise = np.empty((len(keys), num_samples), dtype=dtype)

    def fill(row: int) -> None:
        rng = block_rng(seed, keys[row], index)
        rng.standard_normal(out=noise[row], dtype=noise.dtype)

    if executor is None:
        for row in range(len(keys)):
            fill(row)
    else:
        list(executor.map(fill, range(len(keys))))
    return noise


class ColouredNoise:
    """Gaussian streams coloured by FIRs, computed block by block.

    Streams are drawn and filtered in groups of ``_STREAMS_PER_FFT``;
    between blocks only the last ``taps - 1`` white samples of each
    stream are kept.

    Args:
        seed: Simulation seed.
        keys: One stream key per stream (``stream_key(...)``).
        firs: Taps, shape ``(streams, taps)``; ``taps`` must not exceed
            ``block_samples``.
        block_samples: Samples per GPS block.
        dtype: Floating dtype of the noise and the filtering.
        executor: Draws streams in parallel threads when given.
    """

    def __init__(
        self,
        seed: int,
        keys: list[int],
        firs: np.ndarray,
        block_samples: int,
        dtype: DTypeLike = np.float32,
        executor: Executor | None = None,
    ) -> None:
        if firs.shape[0] != len(keys) or firs.shape[-1] > block_samples:
            raise ValueError(
                f"firs of shape {firs.shape} need one row per stream "
                f"({len(keys)}) and at most {block_samples} taps"
            )
        self.seed = seed
        self.keys = list(keys)
        self.block_samples = block_samples
        self.dtype = np.dtype(dtype)
        self.executor = executor
        self.taps = firs.shape[-1]
        self.fft_length = sp_fft.next_fast_len(
            block_samples + self.taps - 1, real=True
        )
        self.responses = sp_fft.rfft(
            firs.astype(self.dtype), n=self.fft_length, axis=-1
        )
        # The last taps - 1 white samples of each stream in a block.
        self._tail: tuple[int, np.ndarray] | None = None

    def _white(self, keys: list[int], index: int) -> np.ndarray:
        """White noise of some streams in block ``index``."""
        return white_noise(
            self.seed,
            keys,
            index,
            self.block_samples,
            self.dtype,
            self.executor,
        )

    def block(self, index: int) -> np.ndarray:
        """Coloured noise of block ``index``, shape ``(streams, time)``."""
        streams = len(self.keys)
        kept = slice(self.block_samples - self.taps + 1, None)
        follows = self._tail is not None and self._tail[0] == index - 1
        history = (
            self._tail[1]
            if follows
            else np.empty((streams, self.taps - 1), self.dtype)
        )
        tail = np.empty_like(history)
        coloured = np.empty((streams, self.block_samples), self.dtype)
        for first in range(0, streams, _STREAMS_PER_FFT):
            rows = slice(first, first + _STREAMS_PER_FFT)
            if not follows:
                history[rows] = self._white(self.keys[rows], index - 1)[
                    :, kept
                ]
            current = self._white(self.keys[rows], index)
            tail[rows] = current[:, kept]
            spectrum = sp_fft.rfft(
                np.concatenate([history[rows], current], axis=-1),
                n=self.fft_length,
                axis=-1,
                workers=-1,
            )
            filtered = sp_fft.irfft(
                spectrum * self.responses[rows],
                n=self.fft_length,
                axis=-1,
                workers=-1,
            )
            coloured[rows] = filtered[
                :, self.taps - 1 : self.taps - 1 + self.block_samples
            ]
        self._tail = (index, tail)
        return coloured


class BlockSinusoids:
    """Unit sinusoids ``sin(2 pi f_j t + phi_j)`` over any block's samples.

    Tables of ``cos`` and ``sin(2 pi f_j offsets)`` are computed once; a
    block starting at GPS ``g`` then needs only the angle addition with
    ``2 pi f_j g + phi_j`` (reduced exactly), two multiply-adds a sample.

    Args:
        frequencies: ``f_j``, Hz, shape ``(sinusoids,)``.
        phases: ``phi_j`` at GPS 0, rad, shape ``(sinusoids,)``.
        offsets: Seconds of each sample after the block start,
            ``(time,)``.
        dtype: Floating dtype of the tables and results.
    """

    def __init__(
        self,
        frequencies: np.ndarray,
        phases: np.ndarray,
        offsets: np.ndarray,
        dtype: DTypeLike = np.float32,
    ) -> None:
        self.frequencies = np.asarray(frequencies, dtype=np.float64)
        self.phases = np.asarray(phases, dtype=np.float64)
        self.dtype = np.dtype(dtype)
        shape = (len(self.frequencies), len(offsets))
        self._cos = np.empty(shape, self.dtype)
        self._sin = np.empty(shape, self.dtype)
        # One sinusoid at a time: float64 angles of one row only.
        for row, frequency in enumerate(self.frequencies):
            angles = 2 * np.pi * ((frequency * offsets) % 1)
            self._cos[row] = np.cos(angles)
            self._sin[row] = np.sin(angles)

    def _start(self, gps: float) -> tuple[np.ndarray, np.ndarray]:
        """cos and sin of each sinusoid's angle at ``gps``, ``(n, 1)``."""
        angles = self.phases + 2 * np.pi * np.array(
            [turns_at(frequency, gps) for frequency in self.frequencies]
        )
        return (
            np.cos(angles).astype(self.dtype)[:, None],
            np.sin(angles).astype(self.dtype)[:, None],
        )

    def sin(self, gps: float) -> np.ndarray:
        """``sin(2 pi f_j (gps + offsets) + phi_j)``, ``(n, time)``."""
        cos_start, sin_start = self._start(gps)
        return sin_start * self._cos + cos_start * self._sin

    def cos(self, gps: float) -> np.ndarray:
        """``cos(2 pi f_j (gps + offsets) + phi_j)``, ``(n, time)``."""
        cos_start, sin_start = self._start(gps)
        return cos_start * self._cos - sin_start * self._sin
