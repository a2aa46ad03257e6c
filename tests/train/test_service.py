"""``deepclean-train service``: retraining on the latest 1 s frames."""

import json

import pytest

from deepclean_data.replay import replay
from deepclean_engine.exported import published_model
from deepclean_train.cli import main, run
from deepclean_train.publish import publish
from deepclean_train.service import DATA_NAME, read_frames, service


@pytest.fixture(scope="module")
def frames(toy, data_file, tmp_path_factory):
    """The toy stretch as 1 s llhoft/lldetchar frames."""
    folder = tmp_path_factory.mktemp("frames")
    replay(
        data_file,
        folder,
        toy.strain_channel,
        toy.witnesses,
        progress=False,
    )
    return folder


@pytest.fixture
def model_dir(toy_fit_options, tmp_path):
    """A first model, trained on the toy data, published."""
    run(
        [
            "fit",
            *toy_fit_options,
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path / 'first'}",
        ]
    )
    publish(tmp_path / "first" / "model.pt", tmp_path / "models")
    return tmp_path / "models"


def _fit_args(toy_fit_options):
    """The tiny run's configs and sizes, without its data file and spans
    (the service injects them)."""
    return [
        option
        for option in toy_fit_options
        if not option.startswith(("--data.fname", "--data.train_duration"))
        and not option.startswith("--data.valid_duration")
    ] + ["--trainer.max_epochs=1"]


def test_frames_are_read_back_with_gaps_as_nan(toy, frames, tmp_path):
    data, missing = read_frames(
        frames,
        frames,
        toy.strain_channel,
        toy.witnesses,
        int(toy.t0) + 10,
        int(toy.t0) + 14,
    )
    assert not missing
    whole = toy.channels()
    first = round(10 * toy.sample_rate)
    last = round(14 * toy.sample_rate)
    assert data[toy.strain_channel].tolist() == pytest.approx(
        whole[toy.strain_channel][first:last].tolist(), rel=1e-12, abs=0
    )


def test_steps_retrain_gate_and_publish(
    toy, frames, model_dir, toy_fit_options, tmp_path, capsys
):
    t0 = int(toy.t0)
    output = tmp_path / "service"
    steps = service(
        frames,
        model_dir,
        output,
        _fit_args(toy_fit_options),
        cadence=32,
        train_duration=96,
        valid_duration=32,
        start=t0 + 128,
        end=t0 + 160,
    )
    assert [step.gps for step in steps] == [t0 + 128, t0 + 160]
    printed = [
        json.loads(line)
        for line in capsys.readouterr().out.split("\n")
        if line.startswith("{")
    ]
    assert [entry["gps"] for entry in printed] == [t0 + 128, t0 + 160]
    version = 1
    for step in steps:
        folder = output / f"gps-{step.gps}"
        gate = json.loads((folder / "gate.json").read_text())
        # the candidate was judged on the held-out last 32 s, inside them
        assert step.gps - 32 <= gate["start"] < gate["end"] <= step.gps
        assert gate["live_model"] in (f"gps-{step.gps}", f"version {version}")
        assert step.status == ("promoted" if gate["promoted"] else "kept")
        if gate["promoted"]:
            version += 1
        assert step.version == version
        assert not (folder / DATA_NAME).exists()
    path, record = published_model(model_dir)
    assert record["version"] == version
    if version > 1:
        promoted = next(s for s in reversed(steps) if s.status == "promoted")
        assert (
            path.read_bytes()
            == (output / f"gps-{promoted.gps}" / "model.pt").read_bytes()
        )


def _one_step_without(
    pattern, toy, frames, model_dir, toy_fit_options, tmp_path
):
    """The service's step at ``t0 + 128`` over the frames less the one
    matching ``pattern``."""
    lost = tmp_path / "lost"
    lost.mkdir()
    for path in frames.iterdir():
        (lost / path.name).symlink_to(path)
    next(lost.glob(pattern)).unlink()
    t0 = int(toy.t0)
    return service(
        lost,
        model_dir,
        tmp_path / "service",
        _fit_args(toy_fit_options),
        cadence=32,
        train_duration=96,
        valid_duration=32,
        start=t0 + 128,
        end=t0 + 128,
    )


def test_a_span_with_missing_frames_is_skipped(
    toy, frames, model_dir, toy_fit_options, tmp_path
):
    t0 = int(toy.t0)
    steps = _one_step_without(
        f"*_llhoft-{t0 + 100}-1.gwf",
        toy,
        frames,
        model_dir,
        toy_fit_options,
        tmp_path,
    )
    assert len(steps) == 1 and steps[0].status == "skipped"
    assert f"1 frames missing in [{t0}, {t0 + 128}), the first at " in (
        steps[0].reason
    )
    assert published_model(model_dir)[1]["version"] == 1


def test_nothing_published_is_refused(toy, frames, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "service",
                f"--strain_dir={frames}",
                f"--model_dir={tmp_path / 'empty'}",
                f"--output_dir={tmp_path / 'service'}",
                "--fit_args=[]",
            ]
        )
    assert stop.value.code == 1
    assert "no model is published in" in capsys.readouterr().err


def test_a_lost_last_frame_does_not_stall_the_service(
    toy, frames, model_dir, toy_fit_options, tmp_path
):
    t0 = int(toy.t0)
    # the step's last second never arrives; later seconds do
    steps = _one_step_without(
        f"*_lldetchar-{t0 + 127}-1.gwf",
        toy,
        frames,
        model_dir,
        toy_fit_options,
        tmp_path,
    )
    assert [step.status for step in steps] == ["skipped"]
    assert f"the first at {t0 + 127}" in steps[0].reason


def test_a_published_hybrid_model_is_refused(
    frames, model_dir, toy_fit_options, tmp_path
):
    """The service fine-tunes on raw frames: a model trained after a
    classical stage would lose it."""
    from deepclean_engine import load_exported_model, save_exported_model

    first, _ = published_model(model_dir)
    module, metadata = load_exported_model(first)
    hybrid = save_exported_model(
        module, {**metadata, "subtracted": "NOMAD"}, tmp_path / "hybrid.pt"
    )
    publish(hybrid, tmp_path / "hybrid-models")
    with pytest.raises(ValueError, match="a hybrid model"):
        service(
            frames,
            tmp_path / "hybrid-models",
            tmp_path / "service",
            _fit_args(toy_fit_options),
            end=0,
        )
    assert not (tmp_path / "service").exists()
