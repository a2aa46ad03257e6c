"""Fitted input and target scaling with state in registered buffers."""

import torch


def _check_finite(x: torch.Tensor, what: str) -> None:
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        if x.ndim == 2:
            rows = (~finite.all(dim=-1)).nonzero().flatten().tolist()
            where = f" in channels {rows}"
        else:
            where = ""
        raise ValueError(
            f"{what} contains NaN or inf{where}; fit on a span without "
            "gaps or invalid samples"
        )


class ChannelStandardScaler(torch.nn.Module):
    """Standardise each witness channel with a mean and std fitted on data.

    Args:
        num_channels: number of witness channels.

    Buffers:
        mean: shape ``(channels, 1)``, in witness units.
        std: shape ``(channels, 1)``, in witness units.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        self.num_channels = num_channels
        self.register_buffer("mean", torch.zeros(num_channels, 1))
        self.register_buffer("std", torch.ones(num_channels, 1))

    def fit(self, x: torch.Tensor) -> None:
        """Set mean and std (population, ddof=0) from training data.

        Statistics are computed in float64 and stored in the buffers'
        dtype.

        Args:
            x: witnesses, shape ``(channels, time)``.

        Raises:
            ValueError: wrong shape, NaN/inf, or a constant channel.
        """
        if x.ndim != 2 or x.shape[0] != self.num_channels:
            raise ValueError(
                f"fit data must have shape ({self.num_channels}, time), "
                f"got {tuple(x.shape)}"
            )
        _check_finite(x, "witness fit data")
        data = x.to(torch.float64)
        mean = data.mean(dim=-1, keepdim=True)
        std = data.std(dim=-1, correction=0, keepdim=True)
        constant = (std.flatten() == 0).nonzero().flatten().tolist()
        if constant:
            raise ValueError(
                f"witness channels {constant} are constant in the fit data "
                "(zero standard deviation); drop them from the witness list "
                "or fit on a span where they vary"
            )
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise witnesses.

        Args:
            x: witnesses, shape ``(batch, channels, time)``.

        Returns:
            ``(x - mean) / std``, same shape.
        """
        return (x - self.mean) / self.std


class StrainScaler(torch.nn.Module):
    """Scale the strain target by a fitted factor, and back.

    The network is trained on ``strain / scale`` (order unity); its
    output is returned to strain units with ``inverse=True``.

    Buffers:
        scale: scalar, in strain units (the standard deviation of the fit
            data).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    def fit(self, x: torch.Tensor) -> None:
        """Set the scale to the standard deviation of the data (ddof=0).

        Args:
            x: strain (typically band-passed), shape ``(time,)``.

        Raises:
            ValueError: wrong shape, NaN/inf, or constant data.
        """
        if x.ndim != 1:
            raise ValueError(
                f"fit data must have shape (time,), got {tuple(x.shape)}"
            )
        _check_finite(x, "strain fit data")
        std = x.to(torch.float64).std(correction=0)
        if std == 0:
            raise ValueError(
                "strain fit data is constant (zero standard deviation); "
                "fit on real strain"
            )
        self.scale.copy_(std)

    def forward(self, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """Scale (``x / scale``) or unscale (``x * scale``).

        Args:
            x: strain, any shape, e.g. ``(batch, time)``.
            inverse: unscale instead of scale.

        Returns:
            Tensor of the same shape.
        """
        if inverse:
            return x * self.scale
        return x / self.scale
