"""Shared fixtures for the training tests: seeding, small toy data and a
small simulated detector with a candidate pool.

The toy detector has a strain channel and four witnesses at 512 Hz:
white background plus noise coupled linearly from two witnesses (one
delayed by a few samples); the other two witnesses are unrelated.
Cleaning the 55-65 Hz band perfectly would lower its ASD by a factor of
about 3.7.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from deepclean_data.simulate import simulate
from deepclean_data.simulation import CouplingConfig, SimulationConfig
from deepclean_data.simulation.config import CandidateConfig
from deepclean_io import write_timeseries


@dataclass(frozen=True)
class ToyDetector:
    """Channel names, timing and bands of the toy data.

    Attributes:
        strain_channel: strain channel name.
        witnesses: witness channel names.
        sample_rate: Hz.
        t0: GPS start of the data file, s.
        duration: length of the data file, s.
        bands: cleaning bands, Hz.
    """

    strain_channel: str = "H1:GDS-CALIB_STRAIN"
    witnesses: list[str] = field(
        default_factory=lambda: [f"H1:PEM-WITNESS_{i}" for i in range(4)]
    )
    sample_rate: float = 512.0
    t0: float = 1_250_000_000.0
    duration: float = 192.0
    bands: list[tuple[float, float]] = field(
        default_factory=lambda: [(55.0, 65.0)]
    )

    def channels(
        self, duration: float | None = None, seed: int = 1
    ) -> dict[str, np.ndarray]:
        """Strain (float64, ~1e-21) and witnesses (float32) by channel."""
        rng = np.random.default_rng(seed)
        size = round((duration or self.duration) * self.sample_rate)
        witnesses = rng.standard_normal((len(self.witnesses), size))
        coupled = 3 * witnesses[0] + 2 * np.roll(witnesses[1], 5)
        strain = 1e-21 * (rng.standard_normal(size) + coupled)
        channels = {self.strain_channel: strain}
        channels.update(
            zip(self.witnesses, witnesses.astype(np.float32), strict=True)
        )
        return channels


@pytest.fixture(autouse=True)
def seed_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def toy() -> ToyDetector:
    return ToyDetector()


@pytest.fixture(scope="session")
def data_file(
    toy: ToyDetector, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("data")
    return write_timeseries(
        folder / f"H1-TEST-{toy.t0:.0f}-{toy.duration:.0f}.hdf5",
        toy.channels(),
        toy.t0,
        toy.sample_rate,
    )


REFERENCE = Path(__file__).parents[2] / "projects/train/configs/reference.yaml"


@pytest.fixture(scope="session")
def toy_fit_options(toy: ToyDetector, data_file: Path) -> list[str]:
    """``deepclean-train fit`` options of a tiny run on the toy data
    (reference config, network at 256 Hz, 128 + 32 s, 4 batches of 16),
    without epochs or output folder."""
    return [
        f"--config={REFERENCE}",
        f"--data.fname={data_file}",
        f"--data.sample_rate={toy.sample_rate}",
        "--data.network_sample_rate=256",
        f"--data.strain_channel={toy.strain_channel}",
        f"--data.witnesses={json.dumps(toy.witnesses)}",
        "--data.train_duration=128",
        "--data.valid_duration=32",
        "--data.batch_size=16",
        "--data.batches_per_epoch=4",
    ]


@dataclass(frozen=True)
class BilinearDetector:
    """Channels of :func:`bilinear_pool`: the simulated detector at 512 Hz
    over 640 s from ``t0`` with the mains monitor, two angular witnesses
    that couple only bilinearly (their motion modulates the mains line),
    one angular witness that does not couple, the two decoys and 8
    candidates (6 uncoupled, 2 correlated with the coupled witnesses).
    """

    strain_channel: str = "H1:GDS-CALIB_STRAIN"
    mains: str = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
    coupled: tuple[str, ...] = ("H1:ASC-CHARD_P_INMON", "H1:ASC-DHARD_Y_INMON")
    uncoupled: str = "H1:ASC-SRC1_P_INMON"
    decoys: tuple[str, ...] = (
        "H1:PEM-EX_ACC_BSC9_ETMX_Y_DQ",
        "H1:PEM-EY_MIC_VEA_PLUSY_DQ",
    )
    sample_rate: float = 512.0
    t0: float = 1_000_000_000.0


@pytest.fixture(scope="session")
def bilinear() -> BilinearDetector:
    return BilinearDetector()


@pytest.fixture(scope="session")
def bilinear_pool(
    bilinear: BilinearDetector, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The data file of :class:`BilinearDetector`."""
    return simulate(
        tmp_path_factory.mktemp("bilinear"),
        bilinear.t0,
        640,
        bilinear.strain_channel,
        [bilinear.mains, *bilinear.coupled, bilinear.uncoupled],
        bilinear.mains,
        bilinear.sample_rate,
        seed=3,
        config=SimulationConfig(
            coupling=CouplingConfig(
                nonlinear_fraction=0.0,
                num_uncoupled=1,
                weight_range=(0.5, 1.0),
            ),
            candidates=CandidateConfig(num_uncoupled=6, num_correlated=2),
        ),
        progress=False,
    )


@pytest.fixture(scope="session")
def bilinear_fit_options(bilinear: BilinearDetector) -> list[str]:
    """``deepclean-train fit`` options of a 10-epoch run on
    :func:`bilinear_pool` (512 s training, 128 s validation), without the
    data file, witnesses or output folder."""
    return [
        f"--config={REFERENCE}",
        f"--data.sample_rate={bilinear.sample_rate}",
        "--data.network_sample_rate=256",
        f"--data.strain_channel={bilinear.strain_channel}",
        "--data.train_duration=512",
        "--data.valid_duration=128",
        "--data.batches_per_epoch=32",
        "--trainer.max_epochs=10",
        "--trainer.enable_progress_bar=false",
    ]
