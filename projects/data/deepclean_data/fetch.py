"""Fetch real detector data with gwpy and store it as one HDF5 file.

`fetch` downloads strain and witness channels for [start, end) with
`gwpy.timeseries.TimeSeriesDict.get` (NDS2 or gwdatafind, tape allowed),
resamples every channel to one rate with an anti-aliasing FIR filter and
writes the gwpy HDF5 layout ``{prefix}-{start}-{duration}.hdf5``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.signal import resample_poly

from deepclean_io.hdf5 import file_info, hdf5_name, write_timeseries

GwpySource = Literal["gwdatafind", "nds2"]

MAX_RESAMPLE_FACTOR = 64
"""Largest numerator or denominator of a target/native rate ratio."""

logger = logging.getLogger(__name__)


class CredentialsError(PermissionError):
    """No credentials (or server setting) to reach LIGO data."""


def _kerberos_problem(environ: Mapping[str, str]) -> str | None:
    """What is missing for a Kerberos ticket, or None if one is there."""
    cache = environ.get("KRB5CCNAME", f"FILE:/tmp/krb5cc_{os.getuid()}")
    kind, _, location = cache.rpartition(":")
    if kind not in ("", "FILE") or Path(location).is_file():
        return None
    return (
        f"no Kerberos ticket (no credential cache at {location}): run "
        "`kinit albert.einstein@LIGO.ORG` (or point KRB5CCNAME at your "
        "ticket cache)"
    )


def _x509_or_token_problem(environ: Mapping[str, str]) -> str | None:
    """What is missing for an X509 proxy or SciToken, or None."""
    uid = os.getuid()
    if environ.get("BEARER_TOKEN"):
        return None
    runtime_dir = environ.get("XDG_RUNTIME_DIR", "/tmp")
    candidates = [
        environ.get("X509_USER_PROXY", f"/tmp/x509up_u{uid}"),
        environ.get("BEARER_TOKEN_FILE", f"{runtime_dir}/bt_u{uid}"),
    ]
    if any(Path(candidate).is_file() for candidate in candidates):
        return None
    return (
        "no X509 proxy or SciToken: run `ligo-proxy-init -p "
        "albert.einstein` (or set X509_USER_PROXY to your proxy file), or "
        "get a token with `htgettoken` (BEARER_TOKEN_FILE)"
    )


def credential_problems(
    source: GwpySource, environ: Mapping[str, str]
) -> list[str]:
    """Steps still needed before gwpy can read from ``source``.

    Args:
        source: ``"nds2"`` (Kerberos and the nds2 client) or
            ``"gwdatafind"`` (``GWDATAFIND_SERVER`` and an X509 proxy or
            SciToken).
        environ: the environment to inspect, normally ``os.environ``.

    Returns:
        Human-readable problems; empty when nothing is missing.
    """
    if source == "nds2":
        problems = [_kerberos_problem(environ)]
        try:
            import nds2  # noqa: F401
        except ImportError:
            problems.append(
                "the nds2 client is not installed (it is not on PyPI): "
                "`conda install -c conda-forge python-nds2-client`, and "
                "set NDSSERVER (e.g. nds.ligo.caltech.edu:31200) to pick "
                "the server"
            )
    elif source == "gwdatafind":
        problems = [_x509_or_token_problem(environ)]
        if not environ.get("GWDATAFIND_SERVER"):
            problems.append(
                "GWDATAFIND_SERVER is not set: export it to your "
                "cluster's datafind server (e.g. datafind.ldas.cit:80)"
            )
    else:
        raise ValueError(
            f"unknown gwpy source {source!r}; use 'gwdatafind' or 'nds2'"
        )
    return [problem for problem in problems if problem]


def check_credentials(
    source: GwpySource | None, environ: Mapping[str, str] | None = None
) -> None:
    """Fail early, before any network call, if ``source`` is unusable.

    Args:
        source: gwpy data source, or None for "any source gwpy tries"
            (then at least one must be usable).
        environ: environment to inspect; ``os.environ`` by default.

    Raises:
        CredentialsError: listing the variables or login steps missing.
    """
    environ = os.environ if environ is None else environ
    sources: list[GwpySource] = (
        ["gwdatafind", "nds2"] if source is None else [source]
    )
    problems = {name: credential_problems(name, environ) for name in sources}
    if any(not missing for missing in problems.values()):
        return
    report = "; ".join(
        f"{name}: {', '.join(missing)}" for name, missing in problems.items()
    )
    raise CredentialsError(
        f"cannot fetch LIGO data, credentials are missing ({report}). "
        "Without an account, use the simulated detector instead "
        "(`deepclean-data simulate`, or source 'simulated' in the pipeline)."
    )


def resample(
    values: np.ndarray, native_rate: float, sample_rate: float, channel: str
) -> np.ndarray:
    """Resample one channel with a zero-phase anti-aliasing FIR filter.

    Uses polyphase filtering (`scipy.signal.resample_poly`, Kaiser
    window) by the exact rational ratio ``sample_rate / native_rate``;
    frequencies above the new Nyquist frequency are removed before
    decimation. The ends are padded by linear extrapolation to limit
    edge transients.

    Args:
        values: samples of shape (time,) at ``native_rate``.
        native_rate: rate of ``values``, Hz.
        sample_rate: wanted rate, Hz.
        channel: channel name, for error messages.

    Returns:
        float64 samples of shape (time * sample_rate / native_rate,).

    Raises:
        ValueError: if the ratio is not a ratio of small integers.
    """
    ratio = Fraction(sample_rate) / Fraction(native_rate)
    if max(ratio.numerator, ratio.denominator) > MAX_RESAMPLE_FACTOR:
        raise ValueError(
            f"cannot resample {channel} from {native_rate} Hz to "
            f"{sample_rate} Hz: the ratio {ratio} is not a ratio of "
            f"integers up to {MAX_RESAMPLE_FACTOR}; pick a sample_rate "
            "that is a power-of-two fraction of the native rate "
            "(e.g. 4096 Hz from 16384 Hz)"
        )
    values = np.asarray(values, dtype=np.float64)
    if ratio == 1:
        return values
    return resample_poly(
        values, ratio.numerator, ratio.denominator, padtype="line"
    )


def _unknown_channel(error: Exception, channels: Sequence[str]) -> str | None:
    message = str(error)
    return next((name for name in channels if name in message), None)


def _check_existing(
    fname: Path,
    channels: Sequence[str],
    start: float,
    end: float,
    sample_rate: float,
) -> bool:
    """True if ``fname`` already holds this fetch; error if it conflicts."""
    if not fname.exists():
        return False
    info = file_info(fname)
    if set(info.channels) != set(channels):
        raise FileExistsError(
            f"{fname} exists with different channels (missing "
            f"{sorted(set(channels) - set(info.channels))}, extra "
            f"{sorted(set(info.channels) - set(channels))}); remove it or "
            "choose another output_dir or prefix"
        )
    found = (info.t0, info.t0 + info.duration, info.sample_rate)
    if found != (start, end, sample_rate):
        raise FileExistsError(
            f"{fname} exists with span/rate {found}, not "
            f"{(start, end, sample_rate)}; remove it or choose another "
            "output_dir or prefix"
        )
    return True


def fetch(
    channels: list[str],
    start: int,
    end: int,
    sample_rate: float,
    output_dir: Path,
    prefix: str = "deepclean",
    gwpy_source: GwpySource | None = None,
) -> Path:
    """Download channels for [start, end) and write one HDF5 file.

    A file of the same name that holds exactly these channels, span and
    rate is kept and the download skipped, so re-running a finished fetch
    costs nothing.

    Args:
        channels: channel names, e.g. ``["H1:GDS-CALIB_STRAIN",
            "H1:PEM-CS_MAINSMON_EBAY_1_DQ", ...]``.
        start: GPS start, whole seconds.
        end: GPS end, whole seconds (exclusive).
        sample_rate: rate of the stored data, Hz (e.g. 4096).
        output_dir: folder of the output file (created if missing).
        prefix: file name prefix: ``{prefix}-{start}-{duration}.hdf5``.
        gwpy_source: ``"gwdatafind"`` or ``"nds2"``; None lets gwpy try
            each in turn. Its credentials are checked before any network
            call.

    Returns:
        Path of the HDF5 file, one dataset per channel.

    Raises:
        ValueError: end <= start, empty or repeated channels, an unknown
            channel, or a rate the data cannot be resampled to.
        FileExistsError: the output exists with other content.
        CredentialsError: no credentials for ``gwpy_source``.
    """
    from gwpy.timeseries import TimeSeriesDict

    if end <= start:
        raise ValueError(
            f"end must be after start: got start={start}, end={end}"
        )
    if not channels or len(set(channels)) != len(channels):
        raise ValueError(
            f"channels {channels} must be a non-empty list without repeats"
        )
    num_samples = (end - start) * sample_rate
    if sample_rate <= 0 or not float(num_samples).is_integer():
        raise ValueError(
            f"sample_rate={sample_rate} Hz must be positive and give a whole "
            f"number of samples over {end - start} s"
        )

    output_dir = Path(output_dir)
    fname = output_dir / hdf5_name(prefix, start, end - start)
    if _check_existing(fname, channels, start, end, sample_rate):
        logger.info(
            "%s already holds %d channels: skipped", fname, len(channels)
        )
        return fname

    check_credentials(gwpy_source)
    logger.info("fetching %d channels for [%s, %s)", len(channels), start, end)
    try:
        fetched = TimeSeriesDict.get(
            channels, start, end, source=gwpy_source, allow_tape=True
        )
    except (RuntimeError, ValueError, KeyError) as error:
        channel = _unknown_channel(error, channels)
        if channel is None:
            raise
        raise ValueError(
            f"unknown channel {channel!r} for [{start}, {end}): check its "
            f"spelling and IFO prefix ({error})"
        ) from error
    missing = [name for name in channels if name not in fetched]
    if missing:
        raise ValueError(
            f"unknown channels {missing}: gwpy returned no data for them; "
            "check their spelling and IFO prefix"
        )

    data = {}
    for name in channels:
        series = fetched[name]
        native_rate = float(series.sample_rate.value)
        span = (float(series.span[0]), float(series.span[1]))
        if span != (float(start), float(end)):
            raise ValueError(
                f"{name}: got data for {span}, asked for [{start}, {end}); "
                "the source has a gap, pick segments without one"
            )
        data[name] = resample(series.value, native_rate, sample_rate, name)
    units = {name: str(fetched[name].unit) for name in channels}
    output_dir.mkdir(parents=True, exist_ok=True)
    write_timeseries(fname, data, start, sample_rate, units=units)
    return fname
