"""Online cleaning of replayed 1 s frames: equality with offline cleaning,
faults, hot reload, restarts and bad input."""

import errno
import hashlib
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepclean_clean import online as online_module
from deepclean_clean.clean import clean
from deepclean_clean.online import FrameSource, State, online
from deepclean_data.replay import replay
from deepclean_engine import CleaningConfig, save_exported_model
from deepclean_io import gwf
from deepclean_io.gwf import (
    LLDETCHAR_TAG,
    LLHOFT_TAG,
    frame_name,
    read_gwf,
    state_vector_channel,
    write_gwf,
)
from deepclean_io.hdf5 import write_timeseries
from deepclean_train.publish import publish

SAMPLE_RATE = 512.0
T0 = 1262304000
STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = ["H1:PEM-CS_MAINSMON_EBAY_1_DQ", "H1:ASC-CHARD_P_INMON"]
DURATION = 48
FIRST, LAST = T0 + 8, T0 + 36
"""The output seconds the tests clean (context on either side)."""
FAST = {"wait_limit": 0.2, "poll_interval": 0.01, "retry_interval": 0.01}


class LinearNoise(torch.nn.Module):
    """A fixed linear filter of the witnesses, in strain units."""

    def __init__(self, num_channels: int, seed: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv1d(num_channels, 1, 9, padding=4)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.randn(self.conv.weight.shape, generator=generator)
            )

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return self.conv(witnesses)[:, 0] * 1e-21


def save_model(
    path: Path,
    witnesses=WITNESSES,
    seed=3,
    subtracted=None,
    extra_files=None,
    **config,
) -> Path:
    cleaning = CleaningConfig(
        sample_rate=SAMPLE_RATE,
        bands=((55.0, 65.0),),
        kernel_length=1.0,
        inference_sampling_rate=2.0,
        **config,
    )
    metadata = {
        "strain_channel": STRAIN,
        "witnesses": list(witnesses),
        "sample_rate": SAMPLE_RATE,
        "cleaning": cleaning.to_dict(),
        "receptive_field": 9,
        "subtracted": subtracted,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_exported_model(
        LinearNoise(len(witnesses), seed), metadata, path, extra_files
    )


@pytest.fixture(scope="module")
def stretch(tmp_path_factory):
    """A data file, the model, and its offline cleaning of
    ``[FIRST, LAST]`` with the online cleaner's default padding."""
    folder = tmp_path_factory.mktemp("stretch")
    rng = np.random.default_rng(5)
    n = int(DURATION * SAMPLE_RATE)
    data = {STRAIN: rng.normal(size=n) * 1e-21}
    for name in WITNESSES:
        data[name] = rng.normal(size=n).astype(np.float32)
    data_file = write_timeseries(
        folder / f"deepclean-{T0}-{DURATION}.hdf5", data, T0, SAMPLE_RATE
    )
    model = save_model(folder / "model" / "model.pt")
    offline = folder / "offline"
    clean(
        model,
        [data_file],
        offline,
        start=FIRST,
        end=LAST + 1,
        file_length=1,
        filter_energy=0.9995,
        progress=False,
    )
    return {"data": data_file, "model": model, "offline": offline}


@pytest.fixture
def frames(stretch, tmp_path):
    """The stretch replayed as frames, with the model published."""
    replay(
        stretch["data"],
        tmp_path / "frames",
        STRAIN,
        WITNESSES,
        progress=False,
    )
    publish(stretch["model"], tmp_path / "models")
    return tmp_path / "frames"


def run_online(tmp_path, frames, **options):
    arguments = {
        "strain_dir": frames,
        "model_dir": tmp_path / "models",
        "output_dir": tmp_path / "online",
        "start": FIRST,
        "end": LAST,
        **FAST,
    }
    arguments.update(options)
    return online(**arguments)


def output(tmp_path, gps):
    path = frame_name(tmp_path / "online", "H1", "llhoft_DEEPCLEAN", gps, 1)
    data, _, _ = read_gwf(
        path, [f"{STRAIN}_DC", f"{STRAIN}_DC_GATED", f"{STRAIN}_DC_STATE"]
    )
    return data


def offline(stretch, gps):
    path = frame_name(stretch["offline"], "H1", "DEEPCLEAN", gps, 1)
    return read_gwf(path, [f"{STRAIN}_DC"])[0][f"{STRAIN}_DC"]


def outputs(tmp_path):
    return sorted(p.name for p in (tmp_path / "online").glob("*.gwf"))


def state(tmp_path, gps):
    return State(int(output(tmp_path, gps)[f"{STRAIN}_DC_STATE"][0]))


def log_lines(capsys):
    return [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{")
    ]


def test_equals_offline_cleaning(stretch, frames, tmp_path, capsys):
    summary = run_online(tmp_path, frames)
    assert (summary.first, summary.last) == (FIRST, LAST)
    assert summary.cleaned == summary.frames == LAST - FIRST + 1
    for gps in range(FIRST, LAST + 1):
        online_strain = output(tmp_path, gps)[f"{STRAIN}_DC"]
        np.testing.assert_allclose(
            online_strain, offline(stretch, gps), rtol=1e-6, atol=0
        )
        assert state(tmp_path, gps) & State.CLEANED
    lines = log_lines(capsys)
    assert [line["gps"] for line in lines] == list(range(FIRST, LAST + 1))
    assert {line["model_version"] for line in lines} == {1}
    assert all(line["compute_ms"] > 0 for line in lines)
    assert lines[-1]["in_band_ratio"] is not None


def test_gate_follows_the_in_band_ratio(frames, tmp_path, capsys):
    run_online(tmp_path, frames, gate_length=4)
    for line in log_lines(capsys):
        data = output(tmp_path, line["gps"])
        gated = data[f"{STRAIN}_DC_GATED"]
        ratio = line["in_band_ratio"]
        if ratio is not None and ratio < 1:
            np.testing.assert_array_equal(gated, data[f"{STRAIN}_DC"])
            assert "GATED_OFF" not in line["flags"]
        else:
            assert "GATED_OFF" in line["flags"]


def test_missing_frames_are_filled_and_marked(stretch, frames, tmp_path):
    frame_name(frames, "H1", LLHOFT_TAG, T0 + 15, 1).unlink()
    frame_name(frames, "H1", LLDETCHAR_TAG, T0 + 25, 1).unlink()
    run_online(tmp_path, frames)
    assert len(outputs(tmp_path)) == LAST - FIRST + 1
    missing = state(tmp_path, T0 + 15)
    assert missing & State.STRAIN_MISSING and missing & State.GATED_OFF
    assert not output(tmp_path, T0 + 15)[f"{STRAIN}_DC"].any()
    touched = [
        gps
        for gps in range(FIRST, LAST + 1)
        if state(tmp_path, gps) & State.WITNESS_MISSING
    ]
    assert T0 + 25 in touched and len(touched) <= 5
    assert not state(tmp_path, T0 + 25) & State.CLEANED
    cleaned = [
        gps
        for gps in range(FIRST, LAST + 1)
        if state(tmp_path, gps) & State.CLEANED
    ]
    assert set(range(FIRST, LAST + 1)) - set(touched) - {T0 + 15} <= set(
        cleaned
    )
    for gps in cleaned:  # every subtraction is the offline one
        np.testing.assert_allclose(
            output(tmp_path, gps)[f"{STRAIN}_DC"],
            offline(stretch, gps),
            rtol=1e-6,
        )


def rewrite(path: Path, channels: dict, gps: int, rate=SAMPLE_RATE):
    path.unlink()
    write_gwf(path, channels, float(gps), rate)


def test_bad_frames_are_marked_not_fatal(frames, tmp_path):
    n = int(SAMPLE_RATE)
    # NaN in a witness, a witness channel absent, a sample-rate change,
    # a truncated strain frame, strain not analysis-ready
    witnesses = read_gwf(
        frame_name(frames, "H1", LLDETCHAR_TAG, T0 + 12, 1), WITNESSES
    )[0]
    witnesses[WITNESSES[1]][10:20] = np.inf
    rewrite(
        frame_name(frames, "H1", LLDETCHAR_TAG, T0 + 12, 1),
        witnesses,
        T0 + 12,
    )
    rewrite(
        frame_name(frames, "H1", LLDETCHAR_TAG, T0 + 18, 1),
        {WITNESSES[0]: np.zeros(n, np.float32)},
        T0 + 18,
    )
    rewrite(
        frame_name(frames, "H1", LLHOFT_TAG, T0 + 24, 1),
        {
            STRAIN: np.zeros(n // 2),
            state_vector_channel("H1"): np.full(n // 2, 3, np.uint32),
        },
        T0 + 24,
        SAMPLE_RATE / 2,
    )
    truncated = frame_name(frames, "H1", LLHOFT_TAG, T0 + 28, 1)
    truncated.write_bytes(truncated.read_bytes()[:500])
    not_ready = frame_name(frames, "H1", LLHOFT_TAG, T0 + 32, 1)
    strain = read_gwf(not_ready, [STRAIN])[0][STRAIN]
    rewrite(
        not_ready,
        {STRAIN: strain, state_vector_channel("H1"): np.ones(n, np.uint32)},
        T0 + 32,
    )

    run_online(tmp_path, frames)

    assert len(outputs(tmp_path)) == LAST - FIRST + 1
    for gps in (T0 + 12, T0 + 18):
        assert state(tmp_path, gps) & State.WITNESS_MISSING
        assert not state(tmp_path, gps) & State.CLEANED
    for gps in (T0 + 24, T0 + 28):
        assert state(tmp_path, gps) & State.STRAIN_MISSING
    ready = state(tmp_path, T0 + 32)
    assert ready & State.STRAIN_NOT_READY and ready & State.GATED_OFF
    assert ready & State.CLEANED
    for gps in range(FIRST, LAST + 1):
        data = output(tmp_path, gps)
        assert all(np.isfinite(values).all() for values in data.values())


def source_for(frames, **options):
    return FrameSource(
        frames,
        frames,
        STRAIN,
        SAMPLE_RATE,
        3,
        **{"wait_limit": 5.0, "poll_interval": 0.01, **options},
    )


def test_frame_being_written_is_retried(frames):
    path = frame_name(frames, "H1", LLHOFT_TAG, T0 + 20, 1)
    complete = path.read_bytes()
    path.write_bytes(complete[: len(complete) // 2])
    sleeps = []

    def finish_writing(seconds):
        sleeps.append(seconds)
        path.write_bytes(complete)

    source = source_for(frames, sleep=finish_writing)
    second = source.read(T0 + 20, WITNESSES)
    assert sleeps and not second.strain_missing
    assert np.isfinite(second.strain).all()


def test_out_of_order_frame_is_waited_for(frames):
    path = frame_name(frames, "H1", LLHOFT_TAG, T0 + 20, 1)
    content = path.read_bytes()
    path.unlink()  # T0 + 21 is there, T0 + 20 comes later
    source = source_for(frames, sleep=lambda s: path.write_bytes(content))
    assert not source.read(T0 + 20, WITNESSES).strain_missing


def test_late_frame_is_ignored_and_logged(frames, caplog):
    path = frame_name(frames, "H1", LLHOFT_TAG, T0 + 20, 1)
    content = path.read_bytes()
    path.unlink()
    source = source_for(frames, wait_limit=0.05)
    assert source.read(T0 + 20, WITNESSES).strain_missing
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, "deepclean_clean.online"):
        source.report_late_frames()
        source.report_late_frames()
    late = [r for r in caplog.records if "after the wait limit" in r.message]
    assert len(late) == 1


def at_second(monkeypatch, gps, action):
    """Run ``action()`` when the cleaner reads input second ``gps``."""
    read = FrameSource.read

    def reading(self, second, *args, **kwargs):
        if second == gps:
            action()
        return read(self, second, *args, **kwargs)

    monkeypatch.setattr(FrameSource, "read", reading)


def publish_corrupt(model_dir: Path) -> None:
    """A publication whose model.pt is not a model (sha256 matching)."""
    record = json.loads((model_dir / "model.json").read_text())
    model = model_dir / "model.pt"
    model.write_bytes(model.read_bytes()[:1000])
    record["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    record["version"] += 1
    (model_dir / "model.json").write_text(json.dumps(record))


def test_hot_reload_switches_at_a_frame_boundary(
    frames, tmp_path, monkeypatch, capsys
):
    retrained = save_model(tmp_path / "retrained" / "model.pt", seed=9)
    at_second(
        monkeypatch,
        T0 + 20,
        lambda: publish(retrained, tmp_path / "models"),
    )
    summary = run_online(tmp_path, frames)
    assert summary.model_versions == [1, 2]
    lines = log_lines(capsys)
    assert [line["gps"] for line in lines] == list(range(FIRST, LAST + 1))
    versions = [line["model_version"] for line in lines]
    switch = versions.index(2)
    assert set(versions[:switch]) == {1} and set(versions[switch:]) == {2}
    assert "MODEL_CHANGED" in lines[switch]["flags"]
    assert all("CLEANED" in line["flags"] for line in lines)


@pytest.mark.parametrize("problem", ["corrupt", "other channels"])
def test_broken_new_model_keeps_the_old_one(
    problem, frames, tmp_path, monkeypatch, capsys, caplog
):
    models = tmp_path / "models"
    if problem == "corrupt":
        at_second(monkeypatch, T0 + 20, lambda: publish_corrupt(models))
    else:
        other = save_model(
            tmp_path / "other" / "model.pt",
            witnesses=[*WITNESSES, "H1:PEM-EY_MAG_X_DQ"],
        )
        at_second(monkeypatch, T0 + 20, lambda: publish(other, models))
    with caplog.at_level(logging.ERROR, "deepclean_clean.online"):
        summary = run_online(tmp_path, frames)
    assert summary.model_versions == [1]
    lines = log_lines(capsys)
    assert [line["gps"] for line in lines] == list(range(FIRST, LAST + 1))
    assert all("CLEANED" in line["flags"] for line in lines)
    rejected = [r for r in caplog.records if "keeping model" in r.message]
    assert len(rejected) == 1


def test_disk_full_is_retried_without_partial_files(
    frames, tmp_path, monkeypatch, caplog
):
    write = gwf.write_gwf
    failures = []

    def full_disk(path, *args, **kwargs):
        if "-1262304020-" in path.name and len(failures) < 3:
            failures.append(path)
            with gwf.atomic_output(path) as partial:
                partial.write_bytes(b"half a frame")
                raise OSError(errno.ENOSPC, "No space left on device")
        return write(path, *args, **kwargs)

    monkeypatch.setattr(gwf, "write_gwf", full_disk)
    with caplog.at_level(logging.ERROR, "deepclean_clean.online"):
        run_online(tmp_path, frames)
    assert len(failures) == 3
    assert len(outputs(tmp_path)) == LAST - FIRST + 1
    assert not list((tmp_path / "online").glob(".*"))
    assert sum("No space left" in r.message for r in caplog.records) == 3


def command(tmp_path, frames, end=LAST):
    return [
        str(Path(sys.executable).parent / "deepclean-clean"),
        "online",
        f"--strain_dir={frames}",
        f"--model_dir={tmp_path / 'models'}",
        f"--output_dir={tmp_path / 'online'}",
        f"--end={end}",
        "--wait_limit=0.2",
    ]


def test_killed_and_restarted_resumes_without_duplicates(
    stretch, frames, tmp_path
):
    process = subprocess.Popen(
        [*command(tmp_path, frames), f"--start={FIRST}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    written = []
    for line in process.stdout:
        written.append(json.loads(line)["gps"])
        if len(written) == 5:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    assert written == list(range(FIRST, FIRST + 5))

    restarted = subprocess.run(
        command(tmp_path, frames),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr
    resumed = [
        json.loads(line)["gps"]
        for line in restarted.stdout.split("\n")
        if line.startswith("{")
    ]
    assert resumed[0] <= FIRST + 5
    assert len(outputs(tmp_path)) == LAST - FIRST + 1
    for gps in range(FIRST, LAST + 1):
        np.testing.assert_allclose(
            output(tmp_path, gps)[f"{STRAIN}_DC"],
            offline(stretch, gps),
            rtol=1e-6,
        )
    # rewritten input of a cleaned second is not cleaned twice
    again = subprocess.run(
        command(tmp_path, frames), capture_output=True, text=True
    )
    assert again.returncode == 0
    assert not [line for line in again.stdout.split("\n") if "gps" in line]


def test_sigterm_exits_143(frames, tmp_path):
    process = subprocess.Popen(
        command(tmp_path, frames, end=T0 + 1000),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.readline()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 143
    assert "SIGTERM" in err
    assert not list((tmp_path / "online").glob(".*"))


class TestBadInput:
    def refused(self, error, match, tmp_path, **options):
        with pytest.raises(error, match=match):
            run_online(tmp_path, **options)
        assert not (tmp_path / "online").exists()

    def test_missing_folder(self, frames, tmp_path):
        self.refused(
            FileNotFoundError,
            "strain folder .* does not exist",
            tmp_path,
            frames=tmp_path / "nowhere",
        )

    def test_nothing_published(self, frames, tmp_path):
        self.refused(
            FileNotFoundError,
            "no model is published",
            tmp_path,
            frames=frames,
            model_dir=tmp_path / "frames",
        )

    def test_model_channels_absent_from_frames(self, frames, tmp_path):
        other = save_model(
            tmp_path / "other" / "model.pt",
            witnesses=[WITNESSES[0], "H1:PEM-EY_MAG_X_DQ"],
        )
        publish(other, tmp_path / "models")
        self.refused(ValueError, "PEM-EY_MAG_X_DQ", tmp_path, frames=frames)

    def test_hybrid_model_without_its_classical_stage(self, frames, tmp_path):
        hybrid = save_model(
            tmp_path / "hybrid" / "model.pt", subtracted="NOMAD"
        )
        publish(hybrid, tmp_path / "models")
        self.refused(
            ValueError,
            "carries no model of that classical stage",
            tmp_path,
            frames=frames,
        )

    def test_unwritable_output(self, frames, tmp_path):
        (tmp_path / "online").write_text("a file in the way")
        with pytest.raises(PermissionError, match="not writable"):
            run_online(tmp_path, frames)


def test_default_start(frames, tmp_path):
    source = source_for(frames)
    folder = tmp_path / "online"
    folder.mkdir()
    newest = T0 + DURATION - 1
    assert online_module._default_start(source, folder) == newest
    write_gwf(
        frame_name(folder, "H1", "llhoft_DEEPCLEAN", T0 + 20, 1),
        {f"{STRAIN}_DC": np.zeros(int(SAMPLE_RATE))},
        T0 + 20,
        SAMPLE_RATE,
    )
    assert online_module._default_start(source, folder) == T0 + 21


def test_keep_log_file_and_summary(frames, tmp_path):
    log_file = tmp_path / "online.log"
    summary_file = tmp_path / "summary.json"
    run_online(
        tmp_path,
        frames,
        keep=5,
        log_file=log_file,
        summary=summary_file,
    )
    assert len(outputs(tmp_path)) == 5
    assert outputs(tmp_path)[-1].endswith(f"-{LAST}-1.gwf")
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["gps"] for line in logged] == list(range(FIRST, LAST + 1))
    summary = json.loads(summary_file.read_text())
    assert summary["first"] == FIRST and summary["last"] == LAST
    assert summary["frames"] == LAST - FIRST + 1


def test_hybrid_model_runs_its_classical_stage_on_the_raw_frames(
    bilinear, tmp_path
):
    """A hybrid model (NOMAD inside) cleans raw frames as the engine
    cleans the stretch with NOMAD's estimate as prior, fed from the
    first second the online cleaner reads."""
    from nomad.model.format import write_model

    from deepclean_clean.nomad import NomadSettings, NomadStream, fit_nomad
    from deepclean_engine.exported import CLASSICAL_NAME

    witnesses = [
        "H1:ASC-CHARD_P_INMON",
        "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
        "H1:ASC-DHARD_P_INMON",
        "H1:ASC-MICH_Y_INMON",
    ]
    fit = round(256 * SAMPLE_RATE)
    nomad = fit_nomad(
        bilinear["witnesses"][:, :fit],
        bilinear["strain"][:fit],
        SAMPLE_RATE,
        [(55.0, 65.0)],
        mains_index=1,
        settings=NomadSettings(fftlength=4.0, max_iterations=3000),
    )
    write_model(nomad, str(tmp_path / "nomad.h5"))
    model = save_model(
        tmp_path / "hybrid" / "model.pt",
        witnesses=witnesses,
        subtracted="NOMAD",
        extra_files={CLASSICAL_NAME: (tmp_path / "nomad.h5").read_bytes()},
    )
    # the 48 s after the fit
    start = T0 + 256
    stretch = slice(fit, fit + round(DURATION * SAMPLE_RATE))
    data = {STRAIN: bilinear["strain"][stretch]}
    for row, name in enumerate(witnesses):
        data[name] = bilinear["witnesses"][row, stretch].astype(np.float32)
    data_file = write_timeseries(
        tmp_path / f"deepclean-{start}-{DURATION}.hdf5",
        data,
        start,
        SAMPLE_RATE,
    )
    replay(data_file, tmp_path / "frames", STRAIN, witnesses, progress=False)
    publish(model, tmp_path / "models")
    first, last = start + 8, start + 36
    run_online(tmp_path, tmp_path / "frames", start=first, end=last)

    # the online cleaner's engine (its default padding energy)
    loaded = online_module.load_model(
        tmp_path / "models",
        STRAIN,
        SAMPLE_RATE,
        None,
        "cpu",
        None,
        None,
        0.9995,
    )
    begin = round((first - loaded.context_seconds() - start) * SAMPLE_RATE)
    strain = data[STRAIN][begin:]
    rows = np.stack([data[name][begin:] for name in witnesses])
    stream = NomadStream(nomad, 4, SAMPLE_RATE, [(55.0, 65.0)])
    prior = stream.estimate(strain, rows.astype(np.float64))
    assert np.abs(prior).max() > 0
    reference = loaded.engine.clean(
        torch.from_numpy(strain),
        torch.from_numpy(rows),
        start + begin / SAMPLE_RATE,
        torch.from_numpy(prior),
    )
    without = loaded.engine.clean(
        torch.from_numpy(strain),
        torch.from_numpy(rows),
        start + begin / SAMPLE_RATE,
    )
    for frame, plain in zip(reference.frames(), without.frames(), strict=True):
        gps = round(frame.t0)
        if not first <= gps <= last:
            continue
        cleaned = output(tmp_path, gps)[f"{STRAIN}_DC"]
        np.testing.assert_allclose(
            cleaned, frame.cleaned.numpy(), rtol=0, atol=1e-9
        )
        assert np.abs(cleaned - plain.cleaned.numpy()).max() > 0.1
