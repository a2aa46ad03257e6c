"""Weights and overlap-add that turn window predictions into a series."""

import torch

from deepclean_engine.config import CleaningConfig


def stitch_window(config: CleaningConfig) -> torch.Tensor:
    """Per-sample weights of one prediction when stitching.

    Windows start every ``stride_size`` samples; the weights of all
    windows covering any sample sum to exactly 1 (up to float64 rounding
    for overlap-add), so the stitched series is an average of
    predictions, never a fraction of one.

    ``"edge_pad"``: 1 on the ``stride_size`` samples starting at
    ``keep_offset``, 0 elsewhere. ``"overlap_add"``: periodic Hann window
    divided by the sum of its ``stride_size``-shifted copies.

    Args:
        config: cleaning parameters.

    Returns:
        Weights, float64, shape ``(kernel_size,)``.
    """
    kernel, stride = config.kernel_size, config.stride_size
    if config.edge_handling == "edge_pad":
        weights = torch.zeros(kernel, dtype=torch.float64)
        weights[config.keep_size : config.keep_size + stride] = 1
        return weights
    hann = torch.hann_window(kernel, periodic=True, dtype=torch.float64)
    shifts = -(-kernel // stride)
    padded = torch.zeros(shifts * stride, dtype=torch.float64)
    padded[:kernel] = hann
    coverage = padded.reshape(shifts, stride).sum(dim=0)
    return hann / coverage.repeat(shifts)[:kernel]


def overlap_add(
    predictions: torch.Tensor, weights: torch.Tensor, stride: int
) -> torch.Tensor:
    """Weighted overlap-add of consecutive window predictions.

    Args:
        predictions: shape ``(windows, kernel)``; window ``i`` starts
            ``i * stride`` samples after window 0.
        weights: per-sample weights, shape ``(kernel,)``.
        stride: samples between window starts.

    Returns:
        Series of ``(windows - 1) * stride + kernel`` samples starting at
        window 0: ``out[n] = sum_i weights[n - i * stride] *
        predictions[i, n - i * stride]`` over the windows covering ``n``.
    """
    num_windows, kernel = predictions.shape
    length = (num_windows - 1) * stride + kernel
    # cut each window into stride-long blocks: block j of window i lands
    # on block i + j of the series, so the sum is one shifted add per
    # block position (skipping blocks whose weights are all zero, which
    # is all but the kept one or two with edge_pad)
    blocks = -(-kernel // stride)
    padding = blocks * stride - kernel
    weighted = torch.nn.functional.pad(predictions, (0, padding))
    weights = torch.nn.functional.pad(weights, (0, padding))
    weighted = weighted.reshape(num_windows, blocks, stride)
    weights = weights.reshape(blocks, stride)
    series = predictions.new_zeros(num_windows + blocks - 1, stride)
    for block in range(blocks):
        if bool(weights[block].any()):
            series[block : block + num_windows] += (
                weighted[:, block] * weights[block]
            )
    return series.reshape(-1)[:length]
