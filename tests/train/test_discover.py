"""``deepclean-train discover``: train on candidates, rank, retrain on
fewer, on a small simulated candidate pool."""

import json
import subprocess
from pathlib import Path

import pytest

from deepclean_data.simulate import simulate
from deepclean_data.simulation import CouplingConfig, SimulationConfig
from deepclean_data.simulation.config import CandidateConfig
from deepclean_train.discover import (
    DISCOVER_HTML,
    DISCOVER_JSON,
    STAGE_RECORD,
    discover,
    read_candidates,
    redundant_channels,
)

REFERENCE = Path(__file__).parents[2] / "projects/train/configs/reference.yaml"
STRAIN = "H1:GDS-CALIB_STRAIN"
MAINS = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
COUPLED = ["H1:ASC-CHARD_P_INMON", "H1:ASC-DHARD_Y_INMON"]
SAMPLE_RATE = 512.0
START = 1_000_000_000
FIT_ARGS = [
    f"--config={REFERENCE}",
    f"--data.sample_rate={SAMPLE_RATE}",
    "--data.network_sample_rate=256",
    f"--data.strain_channel={STRAIN}",
    "--data.train_duration=512",
    "--data.valid_duration=128",
    "--data.batches_per_epoch=32",
    "--trainer.max_epochs=8",
    "--trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """640 s with the mains, two coupled and one uncoupled angular
    witness, the decoys and 8 candidates (2 correlated)."""
    return simulate(
        tmp_path_factory.mktemp("pool"),
        START,
        640,
        STRAIN,
        [MAINS, *COUPLED, "H1:ASC-SRC1_P_INMON"],
        MAINS,
        SAMPLE_RATE,
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


def test_candidate_file_with_comments(tmp_path) -> None:
    listing = tmp_path / "candidates.txt"
    listing.write_text("# witnesses\nH1:A_DQ\n\nH1:B_DQ  # angular\n")
    assert read_candidates(listing) == ["H1:A_DQ", "H1:B_DQ"]
    listing.write_text("H1:A_DQ\nH1:A_DQ\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_candidates(listing)
    with pytest.raises(FileNotFoundError, match="one channel name per line"):
        read_candidates(tmp_path / "missing.txt")


def test_redundant_means_low_saliency_and_high_coherence() -> None:
    def entry(channel, saliency, linear, bilinear):
        return {
            "channel": channel,
            "saliency": {"valid": {"median": saliency}},
            "linear_coherence": {"valid": linear},
            "bilinear_coherence": {"valid": bilinear},
        }

    ranking = [
        entry("used", 0.5, 0.6, None),
        entry("echo", 0.01, 0.4, 0.1),
        entry("angular", 0.3, 0.0, 0.2),
        entry("decoy", 0.02, 0.01, 0.01),
        entry("quiet", 0.01, 0.0, 0.0),
    ]
    assert redundant_channels(ranking, "valid", 3) == ["echo"]
    assert redundant_channels(ranking, "valid", 1) == []


def test_unknown_candidates_are_named(pool, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"\['H1:NOT-A_CHANNEL'\]"):
        discover(
            [pool],
            tmp_path,
            FIT_ARGS,
            STRAIN,
            candidates=[MAINS, "H1:NOT-A_CHANNEL"],
        )
    with pytest.raises(ValueError, match="top_k 5 must be between"):
        discover(
            [pool], tmp_path, FIT_ARGS, STRAIN, candidates=[MAINS], top_k=5
        )


@pytest.mark.slow
def test_top_witnesses_recover_the_full_set(pool, tmp_path, monkeypatch):
    path = discover(
        [pool],
        tmp_path,
        FIT_ARGS,
        STRAIN,
        product_witness=MAINS,
        top_k=4,
        tolerance=0.02,
    )
    summary = json.loads(path.read_text())
    assert len(summary["candidates"]) == 14
    stages = summary["stages"]
    assert {MAINS, *COUPLED} <= set(stages["top"]["witnesses"])
    assert len(stages["top"]["witnesses"]) == 4
    assert stages["full"]["in_band"] < 0.85
    assert summary["recovered"]["top"]
    assert stages["top"]["parameters"] < stages["full"]["parameters"]
    for stage in stages:
        assert (tmp_path / stage / "model.pt").is_file()
    assert "recovered within 0.02" in summary["conclusions"][0]
    assert (tmp_path / DISCOVER_HTML).is_file()

    # a second run reuses every finished training
    records = {
        stage: (tmp_path / stage / STAGE_RECORD).read_text()
        for stage in stages
    }

    def no_training(*args, **kwargs):
        raise AssertionError(f"trained again: {args}")

    monkeypatch.setattr(subprocess, "run", no_training)
    (tmp_path / DISCOVER_JSON).unlink()
    again = json.loads(
        discover(
            [pool],
            tmp_path,
            FIT_ARGS,
            STRAIN,
            product_witness=MAINS,
            top_k=4,
            tolerance=0.02,
        ).read_text()
    )
    assert again["stages"]["top"]["in_band"] == stages["top"]["in_band"]
    for stage, record in records.items():
        assert (tmp_path / stage / STAGE_RECORD).read_text() == record
