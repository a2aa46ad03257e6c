"""Integer-factor FIR decimation and interpolation as torch modules.

Both use one linear-phase (symmetric) Kaiser-window low-pass
designed for the lower rate ``sample_rate / factor``: cutoff at its
Nyquist frequency, transition band a quarter of the lower rate wide,
``attenuation`` dB in the stop band. Frequencies up to
:func:`passband_edge` (0.375 x the lower rate) pass unchanged and
anything that would alias onto them is suppressed by ``attenuation``
dB. The filters are centred, so neither module delays the signal:
output sample ``i`` of the decimator sits at input sample
``i * factor``. Inputs are zero-extended at the ends, so the first and
last ``(num_taps - 1) / 2`` input samples see the edge.

Both are computed block-wise as one matrix product: every block of
``BLOCK_SIZE`` low-rate samples is a fixed linear map of the stretch of
input it depends on, and the maps of all blocks of all channels go
through one GEMM. For the short windows of training and cleaning this is
several times faster than FFT convolution or a 1-channel convolution.
"""

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

DEFAULT_ATTENUATION = 80.0
BLOCK_SIZE = 32
_TRANSITION_FRACTION = 0.25
_PASSBAND_FRACTION = 0.5 - _TRANSITION_FRACTION / 2


def resampling_factor(sample_rate: float, lower_rate: float) -> int:
    """Integer ratio of two sample rates.

    Raises:
        ValueError: ``lower_rate`` is not ``sample_rate`` divided by a
            positive integer.
    """
    factor = round(sample_rate / lower_rate)
    if factor < 1 or not np.isclose(factor * lower_rate, sample_rate):
        raise ValueError(
            f"{lower_rate:g} Hz is not {sample_rate:g} Hz divided by an "
            "integer; choose a rate such as "
            f"{sample_rate / 8:g} or {sample_rate / 16:g} Hz"
        )
    return factor


def passband_edge(lower_rate: float) -> float:
    """Highest frequency (Hz) the resampling filters leave untouched."""
    return _PASSBAND_FRACTION * lower_rate


def lowpass_taps(
    factor: int, attenuation: float = DEFAULT_ATTENUATION
) -> np.ndarray:
    """Odd-length Kaiser low-pass for resampling by ``factor``.

    Args:
        factor: integer rate ratio (> 1).
        attenuation: stop-band attenuation, dB.

    Returns:
        Filter taps, unit gain at 0 Hz, shape ``(num_taps,)``.
    """
    if factor < 2:
        raise ValueError(f"resampling needs a factor > 1, got {factor}")
    width = 2 * _TRANSITION_FRACTION / factor
    num_taps, beta = scipy.signal.kaiserord(attenuation, width)
    num_taps |= 1
    return scipy.signal.firwin(
        num_taps, 1 / factor, window=("kaiser", beta), scale=True
    )


def _decimation_matrix(taps: np.ndarray, factor: int) -> np.ndarray:
    """Map from a padded input block to ``BLOCK_SIZE`` decimated samples.

    Row ``r`` of the block is input sample ``block_start + r - half``;
    column ``j`` is output sample ``block_start / factor + j``.
    """
    num_taps = len(taps)
    matrix = np.zeros((BLOCK_SIZE * factor + num_taps - 1, BLOCK_SIZE))
    for column in range(BLOCK_SIZE):
        start = column * factor
        matrix[start : start + num_taps, column] = taps
    return matrix


def _interpolation_matrix(
    taps: np.ndarray, factor: int, margin: int
) -> np.ndarray:
    """Map from a padded low-rate block to ``BLOCK_SIZE * factor`` samples.

    Row ``r`` of the block is input sample ``block_start + r - margin``;
    column ``m`` is output sample ``block_start * factor + m``, which
    collects ``taps[m - i * factor + half]`` x input sample ``i``.
    """
    half = (len(taps) - 1) // 2
    rows = np.arange(BLOCK_SIZE + 2 * margin)[:, np.newaxis]
    columns = np.arange(BLOCK_SIZE * factor)[np.newaxis, :]
    index = columns - (rows - margin) * factor + half
    inside = (index >= 0) & (index < len(taps))
    return np.where(inside, taps[np.clip(index, 0, len(taps) - 1)], 0.0)


def _split_matrix(matrix: np.ndarray, chunk: int) -> np.ndarray:
    """``[top | bottom]``: the rows a block takes from its own chunk and
    from the next one (zero-filled to ``chunk`` rows), side by side."""
    halo = matrix.shape[0] - chunk
    if not 0 <= halo <= chunk:
        raise ValueError(
            f"a block reaches {halo} samples into the next chunk of "
            f"{chunk}; the filter is too long for BLOCK_SIZE {BLOCK_SIZE}"
        )
    bottom = np.zeros((chunk, matrix.shape[1]))
    bottom[:halo] = matrix[chunk:]
    return np.concatenate([matrix[:chunk], bottom], axis=1)


def _block_product(
    x: torch.Tensor, matrix: torch.Tensor, left: int, num_blocks: int
) -> torch.Tensor:
    """Apply a block map to consecutive blocks of ``x`` with one GEMM.

    ``x`` (zero-extended by ``left`` samples) is cut into chunks of
    ``matrix.shape[0]`` samples; block ``j`` is chunk ``j`` times the
    top half of ``matrix`` plus chunk ``j + 1`` times the bottom half
    (see :func:`_split_matrix`), so no overlapping copies are made.

    Args:
        x: ``(rows, time)``.
        matrix: ``(chunk, 2 * columns)``.
        left: zeros before the first sample.
        num_blocks: blocks to compute.

    Returns:
        ``(rows, num_blocks * columns)``.
    """
    rows, length = x.shape
    chunk = matrix.shape[0]
    columns = matrix.shape[1] // 2
    right = (num_blocks + 1) * chunk - left - length
    chunks = F.pad(x, (left, right)).view(rows, num_blocks + 1, chunk)
    product = chunks @ matrix.to(x.dtype)
    blocks = product[:, :-1, :columns] + product[:, 1:, columns:]
    return blocks.reshape(rows, num_blocks * columns)


class Decimator(torch.nn.Module):
    """Anti-aliased downsampling by an integer factor.

    Args:
        factor: input samples per output sample (> 1).
        attenuation: stop-band attenuation, dB.

    Buffers:
        matrix: block map, ``(BLOCK_SIZE * factor, 2 * BLOCK_SIZE)``,
            float32 (see :func:`_block_product`).
    """

    def __init__(
        self, factor: int, attenuation: float = DEFAULT_ATTENUATION
    ) -> None:
        super().__init__()
        taps = lowpass_taps(factor, attenuation)
        self.factor = factor
        self.block_size = BLOCK_SIZE
        self.half_length = (len(taps) - 1) // 2
        matrix = _split_matrix(
            _decimation_matrix(taps, factor), BLOCK_SIZE * factor
        )
        self.register_buffer(
            "matrix", torch.tensor(matrix, dtype=torch.float32)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter and keep every ``factor``-th sample.

        Args:
            x: ``(..., time)``, e.g. ``(batch, channels, time)``; ``time``
                a multiple of ``factor``.

        Returns:
            ``(..., time // factor)``; sample ``i`` at input sample
            ``i * factor``.
        """
        length = x.shape[-1]
        if length % self.factor:
            raise ValueError(
                f"cannot decimate {length} samples by {self.factor}: "
                "the length must be a multiple of the factor"
            )
        out_length = length // self.factor
        out = _block_product(
            x.reshape(-1, length),
            self.matrix,
            self.half_length,
            -(-out_length // self.block_size),
        )
        return out[:, :out_length].reshape(list(x.shape[:-1]) + [out_length])


class Interpolator(torch.nn.Module):
    """Band-limited upsampling by an integer factor.

    Zero-stuffing followed by the low-pass, scaled by ``factor`` to keep
    the amplitude (computed without the zeros, block-wise).

    Args:
        factor: output samples per input sample (> 1).
        attenuation: stop-band attenuation of the image rejection, dB.

    Buffers:
        matrix: block map, ``(BLOCK_SIZE, 2 * BLOCK_SIZE * factor)``,
            float32 (see :func:`_block_product`).
    """

    def __init__(
        self, factor: int, attenuation: float = DEFAULT_ATTENUATION
    ) -> None:
        super().__init__()
        taps = factor * lowpass_taps(factor, attenuation)
        self.factor = factor
        self.block_size = BLOCK_SIZE
        self.margin = -(-((len(taps) - 1) // 2) // factor)
        matrix = _split_matrix(
            _interpolation_matrix(taps, factor, self.margin), BLOCK_SIZE
        )
        self.register_buffer(
            "matrix", torch.tensor(matrix, dtype=torch.float32)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample.

        Args:
            x: ``(..., time)``.

        Returns:
            ``(..., time * factor)``; input sample ``i`` lands on output
            sample ``i * factor``.
        """
        length = x.shape[-1]
        out = _block_product(
            x.reshape(-1, length),
            self.matrix,
            self.margin,
            -(-length // self.block_size),
        )
        out_length = length * self.factor
        return out[:, :out_length].reshape(list(x.shape[:-1]) + [out_length])
