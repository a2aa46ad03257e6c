"""Offline cleaning: one engine, GWF output, resume, bad input."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deepclean_clean.clean import clean, record_path
from deepclean_engine import (
    CleaningConfig,
    CleaningEngine,
    load_exported_model,
    save_exported_model,
)
from deepclean_io.atomic import partial_path
from deepclean_io.hdf5 import read_timeseries, write_timeseries

SAMPLE_RATE = 512.0
T0 = 1262304000
STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = ["H1:PEM-CS_MAINSMON_EBAY_1_DQ", "H1:ASC-CHARD_P_INMON"]


class LinearNoise(torch.nn.Module):
    """A fixed linear filter of the witnesses, in strain units."""

    def __init__(self, num_channels: int, kernel: int = 9) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.conv = torch.nn.Conv1d(
            num_channels, 1, kernel, padding=kernel // 2
        )
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.randn(self.conv.weight.shape, generator=generator)
            )
        self.scale = 1e-21

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return self.conv(witnesses)[:, 0] * self.scale


def _config():
    return CleaningConfig(
        sample_rate=SAMPLE_RATE,
        bands=((55.0, 65.0),),
        kernel_length=1.0,
        inference_sampling_rate=2.0,
    )


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    metadata = {
        "strain_channel": STRAIN,
        "witnesses": WITNESSES,
        "sample_rate": SAMPLE_RATE,
        "cleaning": _config().to_dict(),
        "receptive_field": 9,
    }
    return save_exported_model(LinearNoise(len(WITNESSES)), metadata, path)


def _series(start, duration, nan_at=None, nan_channel=WITNESSES[1]):
    """Strain and witnesses ``(time,)``, NaN for 10 samples at ``nan_at``
    in ``nan_channel``."""
    rng = np.random.default_rng(int(start) % 1000)
    n = int(duration * SAMPLE_RATE)
    data = {STRAIN: rng.normal(size=n) * 1e-21}
    for name in WITNESSES:
        data[name] = rng.normal(size=n).astype(np.float32)
    if nan_at is not None:
        i = int((nan_at - start) * SAMPLE_RATE)
        data[nan_channel][i : i + 10] = np.nan
    return data


def _write_data(path, start, duration, **nan):
    return write_timeseries(
        path / f"deepclean-{start}-{duration}.hdf5",
        _series(start, duration, **nan),
        start,
        SAMPLE_RATE,
    )


@pytest.fixture
def data_file(tmp_path):
    return _write_data(tmp_path, T0, 64)


def _read_gwf_lalframe(path, channel):
    import lal
    import lalframe

    stream = lalframe.FrStreamOpen(str(path.parent), path.name)
    duration = lalframe.FrFileQueryDt(lalframe.FrFileOpenURL(str(path)), 0)
    series = lalframe.FrStreamReadREAL8TimeSeries(
        stream, channel, stream.epoch, duration, 0
    )
    return series.data.data, float(series.epoch), 1 / series.deltaT, lal


def test_matches_validation_path_and_reads_back(
    data_file, model_path, tmp_path
):
    out = tmp_path / "out"
    summary = clean(
        model_path, [data_file], out, file_length=16, progress=False
    )
    # the same engine over the whole file, as training validation runs it
    module, metadata = load_exported_model(model_path)
    engine = CleaningEngine(
        module, CleaningConfig.from_dict(metadata["cleaning"])
    )
    data, t0, _ = read_timeseries(data_file)
    segment = engine.clean(
        torch.from_numpy(data[STRAIN]),
        torch.from_numpy(np.stack([data[w] for w in WITNESSES])),
        t0,
    )
    first, last = summary.cleaned[0]
    assert first == segment.t0 and last == segment.t0 + segment.duration
    assert [os.path.basename(f) for f in summary.files][:2] == [
        f"H-H1_DEEPCLEAN-{int(first)}-{int(16 - first % 16)}.gwf",
        f"H-H1_DEEPCLEAN-{T0 + 16}-16.gwf",
    ]
    cleaned = []
    for fname in summary.files:
        values, epoch, rate, _ = _read_gwf_lalframe(
            out / os.path.basename(fname), f"{STRAIN}_DC"
        )
        assert rate == SAMPLE_RATE
        cleaned.append((epoch, values))
    assert cleaned[0][0] == first
    stitched = np.concatenate([v for _, v in cleaned])
    np.testing.assert_allclose(
        stitched, segment.cleaned.numpy(), rtol=0, atol=1e-30
    )
    assert summary.not_cleaned[0][:2] == [T0, first]
    record = json.loads((out / f"clean-{T0}-{T0 + 64}.json").read_text())
    assert record["files"] == summary.files


def test_resume_writes_every_file_once(
    data_file, model_path, tmp_path, monkeypatch
):
    from deepclean_io import gwf

    out = tmp_path / "out"
    written = []
    real_write = gwf.write_gwf
    fail_after = [2]

    def recording_write(fname, *args, **kwargs):
        if len(written) == fail_after[0]:
            raise RuntimeError("node lost")
        written.append(os.path.basename(fname))
        return real_write(fname, *args, **kwargs)

    monkeypatch.setattr(gwf, "write_gwf", recording_write)
    with pytest.raises(RuntimeError, match="node lost"):
        clean(model_path, [data_file], out, file_length=8, progress=False)
    assert sorted(p.name for p in out.glob("*.gwf")) == sorted(written)
    assert not list(out.glob(".*"))  # no partial file left behind

    fail_after[0] = None
    summary = clean(
        model_path, [data_file], out, file_length=8, progress=False
    )
    kept = [os.path.basename(f) for f in summary.reused_files]
    names = [os.path.basename(f) for f in summary.files]
    assert kept == written[:2]
    assert len(kept + names) == 8  # [T0 + 2, T0 + 62) on an 8 s grid
    assert sorted(written) == sorted(kept + names)  # each file written once
    assert summary.seconds_cleaned == 60 - 14  # not the kept 6 + 8 s


def test_gap_and_nan_witnesses(model_path, tmp_path):
    first = _write_data(tmp_path, T0, 32, nan_at=T0 + 20.5)
    second = _write_data(tmp_path, T0 + 48, 32)
    summary = clean(
        model_path,
        [second, first],
        tmp_path / "out",
        file_length=4,
        write_noise=True,
        write_raw=True,
        progress=False,
    )
    assert [T0 + 32, T0 + 48, "no data"] in summary.not_cleaned
    assert len(summary.cleaned) == 2
    assert [T0 + 20, "witnesses not finite"] in summary.flagged_frames
    from deepclean_io.gwf import read_gwf

    frame = tmp_path / "out" / f"H-H1_DEEPCLEAN-{T0 + 20}-4.gwf"
    data, t0, _ = read_gwf(
        frame, [f"{STRAIN}_DC", STRAIN, f"{STRAIN}_DC_NOISE"]
    )
    flagged = slice(0, int(SAMPLE_RATE))  # GPS T0+20 .. T0+21
    np.testing.assert_array_equal(
        data[f"{STRAIN}_DC"][flagged], data[STRAIN][flagged]
    )
    assert np.all(data[f"{STRAIN}_DC_NOISE"][flagged] == 0)
    assert np.any(data[f"{STRAIN}_DC_NOISE"][int(2 * SAMPLE_RATE) :] != 0)


class TestBadInput:
    """Bad input is refused before the output folder is made."""

    def refused(self, error, match, model, files, tmp_path, **options):
        out = tmp_path / "out"
        with pytest.raises(error, match=match) as caught:
            clean(model, files, out, progress=False, **options)
        assert not out.exists()
        return str(caught.value)

    def test_missing_channels(self, model_path, tmp_path):
        path = write_timeseries(
            tmp_path / "x-0-64.hdf5",
            {STRAIN: np.zeros(64 * 512)},
            T0,
            SAMPLE_RATE,
        )
        self.refused(
            ValueError,
            "lacks the model's channels",
            model_path,
            [path],
            tmp_path,
        )

    def test_sample_rate(self, model_path, tmp_path):
        n = 64 * 256
        data = {STRAIN: np.zeros(n)}
        data.update({w: np.zeros(n, np.float32) for w in WITNESSES})
        path = write_timeseries(tmp_path / "x-0-64.hdf5", data, T0, 256.0)
        self.refused(
            ValueError, "--sample_rate 512", model_path, [path], tmp_path
        )

    def test_span_outside(self, model_path, data_file, tmp_path):
        self.refused(
            ValueError,
            "outside the data files",
            model_path,
            [data_file],
            tmp_path,
            start=T0 + 100,
            end=T0 + 200,
        )

    def test_file_length(self, model_path, data_file, tmp_path):
        self.refused(
            ValueError,
            "whole number",
            model_path,
            [data_file],
            tmp_path,
            file_length=1.5,
        )

    def test_missing_model(self, data_file, tmp_path):
        self.refused(
            FileNotFoundError,
            "does not exist",
            tmp_path / "model.pt",
            [data_file],
            tmp_path,
        )

    def test_truncated_data_file(self, model_path, data_file, tmp_path):
        content = data_file.read_bytes()
        data_file.write_bytes(content[: len(content) // 3])
        message = self.refused(
            ValueError,
            "not a readable HDF5 file",
            model_path,
            [data_file],
            tmp_path,
        )
        assert str(data_file) in message and "re-run Fetch" in message

    def test_overlapping_files(self, model_path, tmp_path):
        first = _write_data(tmp_path, T0, 32)
        second = _write_data(tmp_path, T0 + 30, 32)
        message = self.refused(
            ValueError, "overlap", model_path, [second, first], tmp_path
        )
        assert str(first) in message and str(second) in message

    def test_output_not_writable(self, model_path, data_file, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(PermissionError, match="not writable"):
            clean(model_path, [data_file], blocker / "out", progress=False)


class TestRerun:
    """A re-run keeps only frames written with the same model and
    settings; its summary describes what it wrote."""

    @pytest.fixture
    def first_run(self, data_file, model_path, tmp_path):
        out = tmp_path / "out"
        summary = clean(
            model_path, [data_file], out, file_length=16, progress=False
        )
        return out, summary

    def test_identical_rerun_keeps_every_frame(
        self, first_run, data_file, model_path
    ):
        out, first = first_run
        stamps = {f: os.stat(f).st_mtime_ns for f in first.files}
        again = clean(
            model_path, [data_file], out, file_length=16, progress=False
        )
        assert again.files == [] and again.reused_files == first.files
        assert again.seconds_cleaned == 0
        assert {f: os.stat(f).st_mtime_ns for f in first.files} == stamps
        assert "kept 4 files of an earlier run" in again.describe()

    @pytest.mark.parametrize(
        ("options", "difference"),
        [
            (
                {"channel_suffix": "_CLEAN"},
                'channel_suffix: "_DC" -> "_CLEAN"',
            ),
            ({"write_noise": True}, "settings.write_noise: false -> true"),
            ({"write_raw": True}, "settings.write_raw: false -> true"),
            (
                {"kernel_length": 4.0, "stride": 3.5},
                "settings.cleaning.kernel_length: 1.0 -> 4.0",
            ),
        ],
    )
    def test_other_settings_are_refused_then_overwritten(
        self, first_run, data_file, model_path, options, difference
    ):
        out, first = first_run
        summary_file = out / f"clean-{T0}-{T0 + 64}.json"
        before = summary_file.read_text()
        with pytest.raises(ValueError) as caught:
            clean(
                model_path,
                [data_file],
                out,
                file_length=16,
                progress=False,
                **options,
            )
        message = str(caught.value)
        assert difference in message and "--overwrite true" in message
        assert summary_file.read_text() == before
        again = clean(
            model_path,
            [data_file],
            out,
            file_length=16,
            overwrite=True,
            progress=False,
            **options,
        )
        # frames of the first run at other window edges were replaced
        assert sorted(out.glob("*.gwf")) == [Path(f) for f in again.files]
        assert again.reused_files == []
        (cleaned,) = again.cleaned
        assert again.seconds_cleaned == cleaned[1] - cleaned[0]

    def test_other_model_is_refused(
        self, first_run, data_file, tmp_path, model_path
    ):
        out, _ = first_run
        other = LinearNoise(len(WITNESSES))
        other.scale = 2e-21
        _, metadata = load_exported_model(model_path)
        other_path = save_exported_model(
            other, metadata, tmp_path / "other" / "model.pt"
        )
        with pytest.raises(ValueError, match="model.sha256") as caught:
            clean(other_path, [data_file], out, file_length=16, progress=False)
        assert "--overwrite true" in str(caught.value)
        again = clean(
            other_path,
            [data_file],
            out,
            file_length=16,
            overwrite=True,
            progress=False,
        )
        record = json.loads((out / f"clean-{T0}-{T0 + 64}.json").read_text())
        assert record["model"] == str(other_path)
        assert record["model_sha256"] == again.model_sha256
        frame_record = json.loads(
            record_path(Path(again.files[0])).read_text()
        )
        assert frame_record["model"]["sha256"] == again.model_sha256

    def test_frames_of_another_span_are_refused(
        self, first_run, data_file, model_path
    ):
        """A later start makes a frame [T0 + 10, T0 + 16) that overlaps the
        first run's [T0 + 2, T0 + 16): refused, and overwrite does not
        replace a frame that reaches outside the span it cleans."""
        out, first = first_run
        rerun = {"file_length": 16, "progress": False, "start": T0 + 10}
        with pytest.raises(ValueError, match="--overwrite true") as caught:
            clean(model_path, [data_file], out, **rerun)
        old = f"{first.files[0]} [{T0 + 2}, {T0 + 16}) and 0 other"
        assert old in str(caught.value)
        with pytest.raises(ValueError, match="delete them") as caught:
            clean(model_path, [data_file], out, overwrite=True, **rerun)
        assert old in str(caught.value)
        record_path(Path(first.files[0])).unlink()
        Path(first.files[0]).unlink()
        again = clean(model_path, [data_file], out, overwrite=True, **rerun)
        assert sorted(out.glob("*.gwf")) == [Path(f) for f in again.files]

    def test_frame_without_record_is_refused(
        self, first_run, data_file, model_path
    ):
        out, first = first_run
        record_path(Path(first.files[1])).unlink()
        with pytest.raises(ValueError, match="does not") as caught:
            clean(model_path, [data_file], out, file_length=16, progress=False)
        assert first.files[1] in str(caught.value)


def test_read_error_in_the_reader_thread_stops_the_run(
    data_file, model_path, tmp_path, monkeypatch
):
    """Chunks are read one ahead in a second thread: a read that fails
    there stops the run with its error, before any later chunk is
    cleaned, leaving whole frames and no summary."""
    from deepclean_io.hdf5 import ContiguousFiles

    real_read = ContiguousFiles.read
    reads = []

    def failing_read(self, *args, **kwargs):
        reads.append(args)
        if len(reads) == 3:
            raise OSError("disk gone")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(ContiguousFiles, "read", failing_read)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk gone"):
        clean(
            model_path,
            [data_file],
            out,
            file_length=8,
            chunk_length=8,
            progress=False,
        )
    assert len(reads) == 3
    frames = sorted(out.glob("*.gwf"))
    assert 1 <= len(frames) <= 2
    assert sorted(out.iterdir()) == sorted(
        frames + [record_path(frame) for frame in frames]
    )


def test_resumed_run_lists_flags_from_before(
    model_path, tmp_path, monkeypatch
):
    """Frames flagged before an interruption are in the final summary."""
    from deepclean_io import gwf

    data = _write_data(tmp_path, T0, 64, nan_at=T0 + 20.5)
    out = tmp_path / "out"
    real_write = gwf.write_gwf

    def write_until(fname, *args, **kwargs):
        if "-1262304032-" in str(fname):
            raise RuntimeError("node lost")
        return real_write(fname, *args, **kwargs)

    monkeypatch.setattr(gwf, "write_gwf", write_until)
    with pytest.raises(RuntimeError, match="node lost"):
        clean(model_path, [data], out, file_length=8, progress=False)
    monkeypatch.setattr(gwf, "write_gwf", real_write)
    summary = clean(model_path, [data], out, file_length=8, progress=False)
    assert os.path.basename(summary.reused_files[-1]) == (
        f"H-H1_DEEPCLEAN-{T0 + 24}-8.gwf"
    )
    assert summary.flagged_frames == [
        [T0 + gps, "witnesses not finite"] for gps in (19, 20, 21)
    ]


def test_chunks_give_the_frames_of_one_pass(model_path, tmp_path):
    """Chunks read into the same arrays one after the other leave every
    output frame (cleaned, noise and raw strain) as one chunk does."""
    from deepclean_io.gwf import read_gwf

    data = _write_data(tmp_path, T0, 64)
    frames = {}
    for chunk_length in (4.0, 64.0):
        out = tmp_path / f"chunks-{chunk_length:g}"
        clean(
            model_path,
            [data],
            out,
            file_length=8,
            write_noise=True,
            write_raw=True,
            chunk_length=chunk_length,
            progress=False,
        )
        frames[chunk_length] = {
            path.name: read_gwf(
                path, [f"{STRAIN}_DC", f"{STRAIN}_DC_NOISE", STRAIN]
            )[0]
            for path in sorted(out.glob("*.gwf"))
        }
    assert list(frames[4.0]) == list(frames[64.0])
    strain = _series(T0, 64)[STRAIN]
    for name, values in frames[4.0].items():
        start, duration = (int(part) for part in name[:-4].split("-")[2:])
        first = int((start - T0) * SAMPLE_RATE)
        np.testing.assert_array_equal(
            values[STRAIN],
            strain[first : first + int(duration * SAMPLE_RATE)],
        )
        for channel, array in values.items():
            np.testing.assert_allclose(
                array, frames[64.0][name][channel], rtol=0, atol=1e-27
            )


def test_nan_strain_is_flagged(model_path, tmp_path):
    data = _write_data(tmp_path, T0, 32, nan_at=T0 + 20.5, nan_channel=STRAIN)
    summary = clean(
        model_path,
        [data],
        tmp_path / "out",
        file_length=4,
        write_noise=True,
        write_raw=True,
        progress=False,
    )
    assert summary.flagged_frames == [[T0 + 20, "strain not finite"]]
    from deepclean_io.gwf import read_gwf

    frame = tmp_path / "out" / f"H-H1_DEEPCLEAN-{T0 + 20}-4.gwf"
    values, _, _ = read_gwf(
        frame, [f"{STRAIN}_DC", STRAIN, f"{STRAIN}_DC_NOISE"]
    )
    flagged = slice(0, int(SAMPLE_RATE))
    np.testing.assert_array_equal(
        values[f"{STRAIN}_DC"][flagged], values[STRAIN][flagged]
    )
    assert np.all(values[f"{STRAIN}_DC_NOISE"][flagged] == 0)
    assert np.isfinite(values[f"{STRAIN}_DC"][int(SAMPLE_RATE) :]).all()
    record = json.loads(record_path(frame).read_text())
    assert record["flagged_frames"] == [[T0 + 20, "strain not finite"]]


def test_back_to_back_files_are_one_segment(model_path, tmp_path):
    """A segment cut into files is cleaned as if it were one file."""
    series = _series(T0, 64)
    half = int(32 * SAMPLE_RATE)
    files = [
        write_timeseries(
            tmp_path / f"deepclean-{T0 + offset}-32.hdf5",
            {name: values[lo : lo + half] for name, values in series.items()},
            T0 + offset,
            SAMPLE_RATE,
        )
        for offset, lo in ((32, half), (0, 0))
    ]
    whole = write_timeseries(
        tmp_path / f"whole-{T0}-64.hdf5", series, T0, SAMPLE_RATE
    )
    split = clean(
        model_path, files, tmp_path / "a", file_length=64, progress=False
    )
    single = clean(
        model_path, [whole], tmp_path / "b", file_length=64, progress=False
    )
    assert split.cleaned == single.cleaned == [[T0 + 2, T0 + 62]]
    assert split.not_cleaned == single.not_cleaned  # no cut at T0 + 32
    assert split.seconds_cleaned == 60 <= split.end - split.start
    from deepclean_io.gwf import read_gwf

    channel = f"{STRAIN}_DC"
    (a,), (b,) = split.files, single.files
    np.testing.assert_array_equal(
        read_gwf(a, [channel])[0][channel], read_gwf(b, [channel])[0][channel]
    )


def test_stale_temporaries_are_removed(data_file, model_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = partial_path(out / f"H-H1_DEEPCLEAN-{T0}-64.gwf", 999999999)
    stale.write_bytes(bytes(1000))
    clean(model_path, [data_file], out, file_length=64, progress=False)
    assert not stale.exists()


def test_command_line(data_file, model_path, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    command = Path(sys.executable).parent / "deepclean-clean"
    result = subprocess.run(
        [
            str(command),
            "clean",
            f"--model={model_path}",
            f"--data_files=[{data_file}]",
            f"--output_dir={tmp_path / 'out'}",
            "--file_length=32",
            "--progress=false",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cleaned 60 s" in result.stdout and "into 2 files" in result.stdout
    assert len(list((tmp_path / "out").glob("H-H1_DEEPCLEAN-*.gwf"))) == 2


class TestCommandLine:
    """``deepclean-clean`` through its entry point."""

    def arguments(self, model, data, out):
        return [
            "clean",
            f"--model={model}",
            f"--data_files=[{data}]",
            f"--output_dir={out}",
            "--file_length=16",
            "--progress=false",
        ]

    def test_expected_error_is_one_line(self, model_path, tmp_path, capsys):
        from deepclean_clean.cli import main

        missing = tmp_path / "deepclean-0-64.hdf5"
        with pytest.raises(SystemExit) as stopped:
            main(self.arguments(model_path, missing, tmp_path / "out"))
        assert stopped.value.code == 1
        error = capsys.readouterr().err
        assert error.startswith("deepclean-clean: error: data file ")
        assert str(missing) in error and "Traceback" not in error

    def test_sigterm_exits_143_and_leaves_complete_files(
        self, data_file, model_path, tmp_path, monkeypatch
    ):
        """SIGTERM once the first frame is written (by the writer thread,
        while the main thread waits or cleans): the run stops early, and
        what it leaves is whole frames, each with its record."""
        import signal

        from deepclean_clean.cli import main
        from deepclean_io import gwf

        real_write = gwf.write_gwf
        written = []

        def write_then_terminate(fname, *args, **kwargs):
            real_write(fname, *args, **kwargs)
            written.append(fname)
            if len(written) == 1:
                os.kill(os.getpid(), signal.SIGTERM)

        monkeypatch.setattr(gwf, "write_gwf", write_then_terminate)
        out = tmp_path / "out"
        with pytest.raises(SystemExit) as stopped:
            main(self.arguments(model_path, data_file, out))
        assert stopped.value.code == 143
        frames = sorted(out.glob("*.gwf"))
        assert frames == sorted(written)
        assert sorted(out.iterdir()) == sorted(
            frames + [record_path(frame) for frame in frames]
        )
        monkeypatch.setattr(gwf, "write_gwf", real_write)
        summary = clean(
            model_path,
            [data_file],
            tmp_path / "all",
            file_length=16,
            progress=False,
        )
        for frame in frames:
            stopped_run, _, _ = gwf.read_gwf(frame, [f"{STRAIN}_DC"])
            whole_run, _, _ = gwf.read_gwf(
                tmp_path / "all" / frame.name, [f"{STRAIN}_DC"]
            )
            np.testing.assert_array_equal(
                stopped_run[f"{STRAIN}_DC"], whole_run[f"{STRAIN}_DC"]
            )
        assert 1 <= len(frames) < len(summary.files)


class TestWindowOverride:
    def test_longer_windows_give_the_same_cleaned_strain(
        self, data_file, model_path, tmp_path
    ):
        default = clean(
            model_path,
            [data_file],
            tmp_path / "a",
            file_length=64,
            write_noise=True,
            progress=False,
        )
        longer = clean(
            model_path,
            [data_file],
            tmp_path / "b",
            file_length=64,
            kernel_length=4.0,
            stride=3.5,
            write_noise=True,
            progress=False,
        )
        from deepclean_io.gwf import read_gwf

        channel = f"{STRAIN}_DC_NOISE"
        start = max(default.cleaned[0][0], longer.cleaned[0][0])
        end = min(default.cleaned[0][1], longer.cleaned[0][1])
        noise = []
        for summary in (default, longer):
            data, t0, _ = read_gwf(summary.files[0], [channel])
            lo = int((start - t0) * SAMPLE_RATE)
            hi = int((end - t0) * SAMPLE_RATE)
            noise.append(data[channel][lo:hi])
        assert end - start >= 40
        np.testing.assert_allclose(
            noise[1], noise[0], rtol=0, atol=1e-6 * np.abs(noise[0]).max()
        )

    def test_edges_must_cover_the_receptive_field(self, model_path):
        from deepclean_clean.clean import window_config

        _, metadata = load_exported_model(model_path)
        metadata["receptive_field"] = 512  # 1 s at 512 Hz
        with pytest.raises(ValueError, match="sees 0.5 s to each side"):
            window_config(metadata, 1.0, 0.5)
        assert window_config(metadata, 4.0, 3.0).kernel_length == 4.0
        del metadata["receptive_field"]
        with pytest.raises(ValueError, match="no receptive_field"):
            window_config(metadata, 4.0, None)
