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
low-rate samples (``DECIMATION_BLOCK_SIZE`` of them when decimating,
``BLOCK_SIZE`` when interpolating) is a fixed linear map of the stretch
of input it depends on, and the maps of all blocks of all channels go
through one GEMM. For the short windows of training and cleaning this is
several times faster than FFT convolution or a 1-channel convolution.
The decimator's small blocks keep the zeros its map multiplies few
(each output costs about ``block * factor + num_taps`` multiply-adds
instead of ``2 * 32 * factor``), which matters because it reads every
witness sample; :meth:`Decimator.windows` decimates overlapping windows
of a span at the cost of the span.
"""

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

DEFAULT_ATTENUATION = 80.0
BLOCK_SIZE = 32
DECIMATION_BLOCK_SIZE = 8
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


def _decimation_matrix(
    taps: np.ndarray, factor: int, block_size: int
) -> np.ndarray:
    """Map from a padded input block to ``block_size`` decimated samples.

    Row ``r`` of the block is input sample ``block_start + r - half``;
    column ``j`` is output sample ``block_start / factor + j``.
    """
    num_taps = len(taps)
    matrix = np.zeros((block_size * factor + num_taps - 1, block_size))
    for column in range(block_size):
        start = column * factor
        matrix[start : start + num_taps, column] = taps
    return matrix


def _edge_matrices(
    taps: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Maps from the first and last input samples of a window to the
    decimated samples whose taps reach across its edges.

    With ``edge = ceil(half / factor)`` for ``half = (len(taps) - 1) /
    2``: the first matrix maps input samples ``[0, (edge - 1) * factor
    + half]`` of a window to its outputs ``0 .. edge - 1``; the second
    maps its last ``edge * factor + half`` input samples to its last
    ``edge`` outputs (the window's length a multiple of ``factor``).
    Both see zeros outside the window, as :meth:`Decimator.forward` on
    the window alone does.

    Returns:
        ``(edge * factor - factor + half + 1, edge)`` and
        ``(edge * factor + half, edge)``.
    """
    half = (len(taps) - 1) // 2
    edge = -(-half // factor)
    # the block map of ``edge`` outputs starting at a window's first or
    # last ``edge`` outputs, without the rows of inputs outside the window
    block = _decimation_matrix(taps, factor, edge)
    first = block[half : (edge - 1) * factor + 2 * half + 1]
    last = block[: edge * factor + half]
    return first, last


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
    """Cut a block map's rows into pieces of ``chunk`` rows (the last
    zero-filled) and put them side by side: piece ``i`` holds the rows a
    block takes from the ``i``-th chunk from its own.

    Returns:
        ``(chunk, pieces * columns)``.
    """
    num_rows, columns = matrix.shape
    pieces = -(-num_rows // chunk)
    padded = np.zeros((pieces * chunk, columns))
    padded[:num_rows] = matrix
    return (
        padded.reshape(pieces, chunk, columns)
        .transpose(1, 0, 2)
        .reshape(chunk, pieces * columns)
    )


def _block_product(
    x: torch.Tensor,
    matrix: torch.Tensor,
    columns: int,
    left: int,
    num_blocks: int,
) -> torch.Tensor:
    """Apply a block map to consecutive blocks of ``x`` with one GEMM.

    ``x`` (zero-extended by ``left`` samples) is cut into chunks of
    ``matrix.shape[0]`` samples; block ``j`` is the sum over pieces
    ``i`` of chunk ``j + i`` times piece ``i`` of ``matrix`` (see
    :func:`_split_matrix`), so no overlapping copies are made.

    Args:
        x: ``(rows, time)``.
        matrix: ``(chunk, pieces * columns)``.
        columns: outputs per block.
        left: zeros before the first sample.
        num_blocks: blocks to compute.

    Returns:
        ``(rows, num_blocks * columns)``.
    """
    rows, length = x.shape
    chunk = matrix.shape[0]
    pieces = matrix.shape[1] // columns
    num_chunks = num_blocks + pieces - 1
    right = num_chunks * chunk - left - length
    chunks = F.pad(x, (left, right)).view(rows, num_chunks, chunk)
    product = (chunks @ matrix.to(x.dtype)).view(
        rows, num_chunks, pieces, columns
    )
    blocks = product[:, :num_blocks, 0]
    for piece in range(1, pieces):
        blocks = blocks + product[:, piece : piece + num_blocks, piece]
    return blocks.reshape(rows, num_blocks * columns)


class Decimator(torch.nn.Module):
    """Anti-aliased downsampling by an integer factor.

    Args:
        factor: input samples per output sample (> 1).
        attenuation: stop-band attenuation, dB.

    Buffers:
        matrix: block map, ``(block * factor, pieces * block)`` with
            ``block = DECIMATION_BLOCK_SIZE``, float32 (see
            :func:`_block_product`). It follows from ``factor`` and
            ``attenuation``; a state dict's copy is not loaded (those
            saved before ``DECIMATION_BLOCK_SIZE`` hold another layout of
            the same filter).
        first_edge, last_edge: maps from a window's first and last input
            samples to the decimated samples near its edges
            (:func:`_edge_matrices`), float32, not saved.
    """

    def __init__(
        self, factor: int, attenuation: float = DEFAULT_ATTENUATION
    ) -> None:
        super().__init__()
        taps = lowpass_taps(factor, attenuation)
        self.factor = factor
        self.half_length = (len(taps) - 1) // 2
        self.block_size = DECIMATION_BLOCK_SIZE
        matrix = _split_matrix(
            _decimation_matrix(taps, factor, self.block_size),
            self.block_size * factor,
        )
        self.register_buffer(
            "matrix", torch.tensor(matrix, dtype=torch.float32)
        )
        for name, edge_matrix in zip(
            ("first_edge", "last_edge"),
            _edge_matrices(taps, factor),
            strict=True,
        ):
            self.register_buffer(
                name,
                torch.tensor(edge_matrix, dtype=torch.float32),
                persistent=False,
            )

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args, **kwargs
    ) -> None:
        """Keep this module's block map over a state dict's."""
        state_dict[prefix + "matrix"] = self.matrix
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
            self.block_size,
            self.half_length,
            -(-out_length // self.block_size),
        )
        return out[:, :out_length].reshape(list(x.shape[:-1]) + [out_length])

    @torch.jit.export
    def windows(
        self, x: torch.Tensor, kernel: int, stride: int
    ) -> torch.Tensor:
        """Decimate every window of a span, each as if alone.

        Gives ``self(x.unfold(-1, kernel, stride).transpose(0, 1))`` (up
        to float rounding) without copying the windows: the span is
        decimated once, and only the outputs within ``half_length``
        input samples of a window's edges, which see that window's zero
        extension instead of its neighbours' data, are recomputed, each
        edge as one matrix product with the first or last input samples
        of every window (:func:`_edge_matrices`). Windows whose start or
        stride is not on the decimated grid are decimated one by one.

        Args:
            x: ``(channels, time)``; windows start at samples ``0,
                stride, 2 * stride, ...`` and end inside ``x``.
            kernel: window length, samples, a multiple of ``factor``.
            stride: samples between window starts.

        Returns:
            ``(windows, channels, kernel // factor)``.
        """
        factor = self.factor
        num_windows = (x.shape[-1] - kernel) // stride + 1
        length = (num_windows - 1) * stride + kernel
        edge = self.first_edge.shape[1]
        if stride % factor or kernel % factor or 2 * edge * factor > kernel:
            return self(x.unfold(-1, kernel, stride).transpose(0, 1))
        decimated = self(x[:, :length])
        windows = decimated.unfold(-1, kernel // factor, stride // factor)
        windows = windows.transpose(0, 1).contiguous()
        first = x[:, : length - kernel + self.first_edge.shape[0]]
        last = x[:, kernel - self.last_edge.shape[0] : length]
        first = first.unfold(-1, self.first_edge.shape[0], stride)
        last = last.unfold(-1, self.last_edge.shape[0], stride)
        windows[..., :edge] = (first @ self.first_edge.to(x.dtype)).transpose(
            0, 1
        )
        windows[..., -edge:] = (last @ self.last_edge.to(x.dtype)).transpose(
            0, 1
        )
        return windows


def decimate_rows(series: torch.Tensor, factor: int) -> torch.Tensor:
    """A long series decimated by ``factor`` one row at a time, so that
    only one row's block products are held at once.

    Args:
        series: ``(time,)`` or ``(channels, time)``.
        factor: integer rate ratio; 1 returns ``series`` unchanged.

    Returns:
        ``(time // factor,)`` or ``(channels, time // factor)``.
    """
    if factor == 1:
        return series
    decimator = Decimator(factor)
    if series.ndim == 1:
        return decimator(series)
    return torch.stack([decimator(row) for row in series])


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
            self.block_size * self.factor,
            self.margin,
            -(-length // self.block_size),
        )
        out_length = length * self.factor
        return out[:, :out_length].reshape(list(x.shape[:-1]) + [out_length])
