"""The retraining gate and report: ``deepclean-clean gate`` and
``deepclean-clean retrain-report``."""

import json

import pytest
import torch

from deepclean_clean.clean import clean
from deepclean_clean.cli import main
from deepclean_clean.retrain import (
    FIRST_ONLY,
    GATE_NAME,
    MODEL_NAME,
    REPORT_HTML,
    REPORT_JSON,
    REPORT_PNG,
    RETRAINED,
    ReportStep,
    gate,
    retrain_report,
)
from deepclean_data.simulate import simulate
from deepclean_engine import CleaningConfig, save_exported_model
from deepclean_engine.gate import decide

SAMPLE_RATE = 512.0
START = 1_000_000_000
STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = [
    "H1:ASC-CHARD_P_INMON",
    "H1:ASC-DHARD_Y_INMON",
    "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
]
BANDS = [[55.0, 65.0]]


class MainsLine(torch.nn.Module):
    """Predicts noise as a scaled copy of the mains monitor: scale 0 is
    a model that removes nothing (ASD ratio 1), 1e-22 one that adds a
    line far above the strain (ratio >> 1)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return witnesses[:, 2] * self.scale


@pytest.fixture(scope="module")
def stretch(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    data = simulate(
        root / "data",
        START,
        384,
        STRAIN,
        WITNESSES,
        WITNESSES[2],
        SAMPLE_RATE,
        seed=5,
        progress=False,
    )
    config = CleaningConfig(sample_rate=SAMPLE_RATE, bands=((55.0, 65.0),))
    models = {
        name: save_exported_model(
            MainsLine(scale),
            {
                "strain_channel": STRAIN,
                "witnesses": WITNESSES,
                "sample_rate": SAMPLE_RATE,
                "bands": BANDS,
                "cleaning": config.to_dict(),
            },
            root / name / "model.pt",
        )
        for name, scale in (("neutral", 0.0), ("harmful", 1e-22))
    }
    return root, data, models


def test_rule():
    good = {"in_band": 0.6, "out_of_band": 1.001}
    assert decide(good, None, 0.005)[0]
    assert decide(good, {"in_band": 0.7, "out_of_band": 1.0}, 0.005)[0]
    promoted, reason = decide(good, {"in_band": 0.5}, 0.005)
    assert not promoted and "0.6000 does not beat" in reason
    promoted, reason = decide(
        {"in_band": 0.3, "out_of_band": 1.006}, {"in_band": 0.5}, 0.005
    )
    assert not promoted and "out-of-band ASD ratio 1.0060" in reason
    nan = {"in_band": float("nan"), "out_of_band": 1.0}
    assert not decide(nan, {"in_band": 0.5}, 0.005)[0]


def test_a_worse_model_is_not_promoted(stretch, tmp_path):
    root, data, models = stretch
    first = gate(
        models["neutral"],
        [data],
        START + 128,
        START + 192,
        tmp_path / "step-0",
        label="step-0",
    )
    assert first.promoted and first.live is None
    assert first.live_model == "step-0"
    assert first.candidate["in_band"] == pytest.approx(1.0)
    worse = gate(
        models["harmful"],
        [data],
        START + 192,
        START + 256,
        tmp_path / "step-1",
        live=tmp_path / "step-0" / MODEL_NAME,
        label="step-1",
    )
    assert not worse.promoted
    assert worse.candidate["in_band"] > 2 * worse.live["in_band"]
    # the live model stays: its bytes and its label
    assert worse.live_model == "step-0"
    assert (tmp_path / "step-1" / MODEL_NAME).read_bytes() == models[
        "neutral"
    ].read_bytes()
    record = json.loads((tmp_path / "step-1" / GATE_NAME).read_text())
    assert record["promoted"] is False and "does not beat" in record["reason"]


def test_a_better_model_is_promoted_from_the_command_line(
    stretch, tmp_path, capsys
):
    root, data, models = stretch
    main(
        [
            "gate",
            f"--candidate={models['harmful']}",
            f"--data_files=[{data}]",
            f"--start={START + 128}",
            f"--end={START + 192}",
            f"--output_dir={tmp_path / 'step-0'}",
        ]
    )
    main(
        [
            "gate",
            f"--candidate={models['neutral']}",
            f"--live={tmp_path / 'step-0' / MODEL_NAME}",
            f"--data_files=[{data}]",
            f"--start={START + 192}",
            f"--end={START + 256}",
            f"--output_dir={tmp_path / 'step-1'}",
            "--label=step-1",
        ]
    )
    assert "gate: promoted: in-band ASD ratio" in capsys.readouterr().out
    record = json.loads((tmp_path / "step-1" / GATE_NAME).read_text())
    assert record["promoted"] and record["live_model"] == "step-1"
    assert (tmp_path / "step-1" / MODEL_NAME).read_bytes() == models[
        "neutral"
    ].read_bytes()


def test_gate_refuses_a_span_too_short_for_the_asds(stretch, tmp_path):
    _, data, models = stretch
    with pytest.raises(ValueError, match="shorter than two 4 s ASD"):
        gate(models["neutral"], [data], START + 128, START + 134, tmp_path)


def test_report_over_steps(stretch, tmp_path):
    root, data, models = stretch
    # step 0: the harmful first model goes live; step 1: the neutral
    # candidate beats it and is promoted
    gate(
        models["harmful"],
        [data],
        START + 128,
        START + 192,
        tmp_path / "step-0",
        label="step-0",
    )
    gate(
        models["neutral"],
        [data],
        START + 192,
        START + 256,
        tmp_path / "step-1",
        live=tmp_path / "step-0" / MODEL_NAME,
        label="step-1",
    )
    # the last span ends with the data: its look-ahead stays uncleaned
    spans = [(START + 256, START + 320), (START + 320, START + 384)]
    steps = []
    for index, (start, end) in enumerate(spans):
        folder = tmp_path / f"step-{index}"
        clean(
            folder / MODEL_NAME,
            [data],
            folder / "cleaned",
            start=start,
            end=end,
            file_length=2,
            progress=False,
        )
        steps.append(ReportStep(start, end, folder, folder / "cleaned"))
    clean(
        models["harmful"],
        [data],
        tmp_path / "first-only",
        start=spans[0][0],
        end=spans[-1][1],
        file_length=2,
        progress=False,
    )
    content = retrain_report(
        steps, tmp_path / "first-only", [data], tmp_path / "report"
    )
    first, second = content["steps"]
    # step 0: both versions are the first model
    assert first[RETRAINED]["in_band_asd_ratio"] == pytest.approx(
        first[FIRST_ONLY]["in_band_asd_ratio"]
    )
    assert second[RETRAINED]["in_band_asd_ratio"] == pytest.approx(1.0, 0.01)
    assert second[FIRST_ONLY]["in_band_asd_ratio"] > 2
    assert second["gate"]["live_model"] == "step-1"
    assert "excess_over_ideal" in second[RETRAINED]
    assert first["evaluated_end"] == START + 320
    assert START + 376 <= second["evaluated_end"] < START + 384
    assert content["summary"]["later_steps_retraining_better"] == 1
    for name in (REPORT_JSON, REPORT_PNG, REPORT_HTML):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert json.loads((tmp_path / "report" / REPORT_JSON).read_text()) == (
        json.loads(json.dumps(content))
    )


def test_report_logged_to_wandb_offline(stretch, tmp_path, monkeypatch):
    from deepclean_tracking import WandbSettings

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    root, data, models = stretch
    gate(
        models["neutral"],
        [data],
        START + 128,
        START + 192,
        tmp_path / "step-0",
        label="step-0",
    )
    clean(
        models["neutral"],
        [data],
        tmp_path / "cleaned",
        start=START + 256,
        end=START + 320,
        file_length=2,
        progress=False,
    )
    step = ReportStep(
        START + 256, START + 320, tmp_path / "step-0", tmp_path / "cleaned"
    )
    retrain_report(
        [step],
        tmp_path / "cleaned",
        [data],
        tmp_path / "report",
        wandb=WandbSettings(enabled=True, group="test"),
    )
    (run,) = (tmp_path / "report" / "wandb").glob("offline-run-*")
    (records,) = run.glob("*.wandb")
    assert b"step000/retrained/in_band_asd_ratio" in records.read_bytes()
    assert list(run.glob("files/media/html/report_*.html"))
