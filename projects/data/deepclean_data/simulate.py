"""Simulated detector data with known answer, in DeepClean's file layout.

``simulate`` writes one span of a simulated interferometer (see
``deepclean_data.simulation.detector``) as

- ``{output_dir}/{prefix}-{start}-{duration}.hdf5``: strain, the
  witnesses given, the drift witness (when configured), the decoy
  witnesses and the candidate witnesses (``config.candidates``, none by
  default; their names: ``candidate_channels``), in gwpy's HDF5 layout,
  exactly like a fetched file;
- ``{output_dir}/truth/{same name}.hdf5``: the truth in the same layout,
  channels named ``{strain}_BACKGROUND``, ``{strain}_COUPLED`` (the sum
  of ``{strain}_COUPLED_LINEAR``, ``_COUPLED_BILINEAR`` and
  ``_COUPLED_NONLINEAR``) and ``{strain}_INJECTIONS``. Raw strain =
  background + coupled + injections; the ideal cleaned strain is
  background + injections;
- ``{output_dir}/truth/{same stem}.json``: the span, seed, full
  configuration, every drawn parameter, the injections in the span and
  the candidates (``"candidates"``: the ``"uncoupled"`` ones, those of
  them with angular-like spectra, ``"low_frequency"``, and for each
  ``"correlated"`` one the angular ``"source"`` it records, its ``"snr"``
  and ``"gain"``).

The truth's layout (paths, channel names, injection descriptions) is
:mod:`deepclean_io.truth`, which also reads it back.

Every sample is a deterministic function of (seed, configuration,
channel names, GPS time): the same call writes the same bytes, and spans
written separately join exactly.
"""

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from deepclean_data.simulation.config import SimulationConfig
from deepclean_data.simulation.detector import (
    STRAIN_UNIT,
    WITNESS_UNIT,
    ChannelRoles,
    SimulatedDetector,
)
from deepclean_io.atomic import write_json_atomic
from deepclean_io.hdf5 import TimeSeriesWriter, hdf5_name
from deepclean_io.truth import truth_channels, truth_paths
from deepclean_io.waveforms import describe

# Samples by which a time may miss the sample grid (float64 GPS times
# near 1e9 s carry ~1e-3 samples of rounding at 4096 Hz).
GRID_TOLERANCE = 0.01


def simulate(
    output_dir: Path,
    start: float,
    duration: float,
    strain_channel: str,
    witnesses: list[str],
    mains_channel: str,
    sample_rate: float = 4096,
    prefix: str = "deepclean",
    seed: int = 0,
    config: SimulationConfig = SimulationConfig(),
    progress: bool = True,
) -> Path:
    """Write a span of simulated detector data and its truth.

    Args:
        output_dir: Folder of the data file (created if missing); the
            truth goes to its ``truth`` subfolder.
        start: GPS start, s, on the sample grid (a multiple of
            1 / sample_rate).
        duration: Length, s, a whole number of samples.
        strain_channel: Strain channel name, e.g. ``H1:GDS-CALIB_STRAIN``.
        witnesses: Witness channels: the mains monitor and one or more
            angular-control channels; decoys named from
            ``DECOY_CHANNELS`` are added, with
            ``config.coupling.drift_witness`` the drift witness
            ``DRIFT_CHANNEL``, and the candidates of
            ``config.candidates``.
        mains_channel: The witness that is the mains monitor, e.g.
            ``H1:PEM-CS_MAINSMON_EBAY_1_DQ`` (the couplings registry's
            line witness); every other witness is angular control.
        sample_rate: Samples per second of every channel, Hz.
        prefix: File name prefix.
        seed: Seed of every random choice.
        config: Simulation parameters (on the command line: a YAML file
            or dotted keys, e.g. ``--config.coupling.skirt_ratio 2``).
        progress: Show a progress bar over blocks.

    Existing files of the same name are replaced atomically; if the
    simulation fails, neither the data nor the truth file appears.

    Returns:
        Path of the data file.
    """
    if duration <= 0:
        raise ValueError(f"duration {duration} must be > 0 seconds")
    if seed < 0:
        raise ValueError(f"seed {seed} must be an integer >= 0")
    first_sample = start * sample_rate
    num_samples = duration * sample_rate
    if not (
        abs(first_sample - round(first_sample)) < GRID_TOLERANCE
        and abs(num_samples - round(num_samples)) < GRID_TOLERANCE
    ):
        raise ValueError(
            f"start {start} and duration {duration} must fall on the "
            f"sample grid of {sample_rate} Hz (multiples of "
            f"{1 / sample_rate} s)"
        )
    first_sample, num_samples = round(first_sample), round(num_samples)
    roles = ChannelRoles.assign(
        strain_channel,
        list(witnesses),
        mains_channel,
        config.coupling.drift_witness,
        config.candidates,
    )
    output_dir = Path(output_dir)
    data_path = output_dir / hdf5_name(prefix, start, duration)
    truth_path, parameters_path = truth_paths(data_path)
    truth = truth_channels(strain_channel)
    units = {roles.strain: STRAIN_UNIT} | dict.fromkeys(
        roles.data_channels[1:], WITNESS_UNIT
    )

    with ExitStack() as stack:
        executor = stack.enter_context(
            ThreadPoolExecutor(max_workers=os.cpu_count())
        )
        detector = SimulatedDetector(
            roles, sample_rate, seed, config, executor
        )
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        data_writer = stack.enter_context(
            TimeSeriesWriter(
                data_path,
                roles.data_channels,
                start,
                sample_rate,
                num_samples,
                units=units,
            )
        )
        truth_writer = stack.enter_context(
            TimeSeriesWriter(
                truth_path,
                list(truth.values()),
                start,
                sample_rate,
                num_samples,
                units=dict.fromkeys(truth.values(), STRAIN_UNIT),
            )
        )
        for index, keep, _ in tqdm(
            list(detector.blocks(first_sample, num_samples)),
            desc=f"simulate {data_path.name}",
            unit="block",
            disable=not progress,
        ):
            channels = detector.block(index)
            data_writer.write(
                {name: channels[name][keep] for name in roles.data_channels}
            )
            truth_writer.write(
                {name: channels[name][keep] for name in truth.values()}
            )
        injections = detector.injections.overlapping(start, start + duration)
        write_json_atomic(
            parameters_path,
            {
                "data_file": data_path.name,
                "start": start,
                "duration": duration,
                "sample_rate": sample_rate,
                "seed": seed,
                "strain_channel": strain_channel,
                "witnesses": list(roles.witnesses),
                "mains_channel": roles.mains,
                "decoys": list(roles.decoys),
                "drift_witness": list(roles.drift),
                "candidates": detector.candidate_truth(),
                "truth_channels": truth,
                "config": dataclasses.asdict(config),
                "parameters": detector.description(),
                "injections": [
                    describe(injection) for injection in injections
                ],
            },
        )
    return data_path
