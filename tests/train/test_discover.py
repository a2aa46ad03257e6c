"""``deepclean-train discover``: train on candidates, rank, retrain on
fewer, on the small simulated candidate pool of
``conftest.BilinearDetector`` (14 witness channels)."""

import json
import subprocess

import pytest

from deepclean_train.discover import (
    DISCOVER_HTML,
    DISCOVER_JSON,
    STAGE_RECORD,
    discover,
    read_candidates,
    redundant_channels,
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
    assert redundant_channels(ranking, "valid", 3, 0.05) == ["echo"]
    assert redundant_channels(ranking, "valid", 1, 0.05) == []
    assert redundant_channels(ranking, "valid", 3, 0.5) == []


def test_unknown_candidates_are_named(
    bilinear, bilinear_pool, bilinear_fit_options, tmp_path
) -> None:
    def run(candidates, top_k=2):
        discover(
            [bilinear_pool],
            tmp_path,
            bilinear_fit_options,
            bilinear.strain_channel,
            candidates=candidates,
            top_k=top_k,
        )

    with pytest.raises(ValueError, match=r"\['H1:NOT-A_CHANNEL'\]"):
        run([bilinear.mains, "H1:NOT-A_CHANNEL"])
    with pytest.raises(ValueError, match="top_k 5 must be between"):
        run([bilinear.mains], top_k=5)


@pytest.mark.slow
def test_top_witnesses_recover_the_full_set(
    bilinear, bilinear_pool, bilinear_fit_options, tmp_path, monkeypatch
):
    def run() -> dict:
        path = discover(
            [bilinear_pool],
            tmp_path,
            bilinear_fit_options,
            bilinear.strain_channel,
            product_witness=bilinear.mains,
            top_k=4,
            tolerance=0.02,
        )
        return json.loads(path.read_text())

    summary = run()
    assert len(summary["candidates"]) == 14
    stages = summary["stages"]
    top = set(stages["top"]["witnesses"])
    assert {bilinear.mains, *bilinear.coupled} <= top
    assert len(top) == 4
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
    again = run()
    assert again["stages"]["top"]["in_band"] == stages["top"]["in_band"]
    for stage, record in records.items():
        assert (tmp_path / stage / STAGE_RECORD).read_text() == record
