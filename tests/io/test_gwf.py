"""GWF frames: names, atomic writes, round trip through gwpy and lalframe,
and reading through lalframe's FrameU interface equal to gwpy's reader."""

from pathlib import Path

import lal
import lalframe
import numpy as np
import pytest
from gwpy.timeseries import TimeSeries, TimeSeriesDict

from deepclean_io.atomic import partial_path, remove_stale_partials
from deepclean_io.gwf import (
    FrameName,
    frame_name,
    gwf_channels,
    list_frames,
    parse_frame_name,
    prune_frames,
    read_gwf,
    state_vector_channel,
    write_gwf,
)


class TestGwf:
    gps = 1262304000
    sample_rate = 4096
    strain = "H1:GDS-CALIB_STRAIN"
    state = state_vector_channel("H1")

    def frame(self, directory: Path) -> tuple[Path, dict[str, np.ndarray]]:
        rng = np.random.default_rng(0)
        data = {
            self.strain: 1e-21 * rng.standard_normal(self.sample_rate),
            self.state: np.full(self.sample_rate, 3, dtype=np.uint32),
        }
        fname = frame_name(directory, "H1", "llhoft", self.gps, 1)
        write_gwf(
            fname,
            data,
            self.gps,
            self.sample_rate,
            units={self.strain: "strain"},
        )
        return fname, data

    def test_frame_name(self, tmp_path):
        fname = frame_name(tmp_path, "H1", "llhoft", self.gps, 1)
        assert fname == tmp_path / "H-H1_llhoft-1262304000-1.gwf"
        assert parse_frame_name(fname) == FrameName(
            "H", "H1", "llhoft", self.gps, 1
        )
        assert frame_name("d", "L1", "lldetchar", 5.0, 4).name == (
            "L-L1_lldetchar-5-4.gwf"
        )

    @pytest.mark.parametrize(
        ("ifo", "gps", "message"),
        [("h1", 0, "interferometer prefix"), ("H1", 0.5, "whole number")],
    )
    def test_frame_name_errors(self, ifo, gps, message):
        with pytest.raises(ValueError, match=message):
            frame_name(".", ifo, "llhoft", gps, 1)

    def test_parse_rejects_other_names(self):
        with pytest.raises(ValueError, match="not a frame name"):
            parse_frame_name("deepclean-1262304000-4096.hdf5")

    def test_round_trip_gwpy(self, tmp_path):
        fname, data = self.frame(tmp_path)
        read, t0, sample_rate = read_gwf(fname, [self.strain, self.state])
        assert (t0, sample_rate) == (self.gps, self.sample_rate)
        np.testing.assert_array_equal(read[self.strain], data[self.strain])
        np.testing.assert_array_equal(read[self.state], data[self.state])
        assert read[self.state].dtype == np.uint32
        series = TimeSeriesDict.read(fname, [self.strain], format="gwf")
        assert str(series[self.strain].unit) == "strain"

    def test_round_trip_lalframe(self, tmp_path):
        fname, data = self.frame(tmp_path)
        stream = lalframe.FrStreamOpen(str(tmp_path), fname.name)
        start = lal.LIGOTimeGPS(self.gps)
        strain = lalframe.FrStreamReadREAL8TimeSeries(
            stream, self.strain, start, 1.0, 0
        )
        assert int(strain.epoch) == self.gps
        assert strain.deltaT == 1 / self.sample_rate
        assert strain.data.length == self.sample_rate
        np.testing.assert_array_equal(strain.data.data, data[self.strain])
        lalframe.FrStreamSeek(stream, start)
        state = lalframe.FrStreamReadUINT4TimeSeries(
            stream, self.state, start, 1.0, 0
        )
        assert np.all(state.data.data == 3)

    def test_read_errors(self, tmp_path):
        fname, _ = self.frame(tmp_path)
        with pytest.raises(ValueError, match=r"\['H1:NOPE'\] are not in"):
            read_gwf(fname, [self.strain, "H1:NOPE"])
        with pytest.raises(FileNotFoundError, match="does not exist"):
            read_gwf(tmp_path / "missing.gwf", [self.strain])

    def test_write_errors(self, tmp_path):
        fname = tmp_path / "H-H1_llhoft-0-1.gwf"
        with pytest.raises(ValueError, match="same length"):
            write_gwf(fname, {"H1:A": np.zeros(4), "H1:B": np.zeros(5)}, 0, 4)
        with pytest.raises(ValueError, match="units given"):
            write_gwf(fname, {"H1:A": np.zeros(4)}, 0, 4, units={"H1:B": "m"})
        with pytest.raises(ValueError, match="not a LAL unit"):
            write_gwf(
                fname, {"H1:A": np.zeros(4)}, 0, 4, units={"H1:A": "m/s"}
            )
        with pytest.raises(ValueError, match="dtypes GWF cannot hold"):
            write_gwf(fname, {"H1:A": np.zeros(4, dtype=bool)}, 0, 4)
        with pytest.raises(ValueError, match="no samples"):
            write_gwf(fname, {"H1:A": np.zeros(0)}, 0, 4)
        assert list(tmp_path.iterdir()) == []

    def test_long_frame_is_uncompressed_and_exact(self, tmp_path):
        """Floats are stored raw and integers zero-suppressed; every dtype
        reads back bit for bit through lalframe and gwpy."""
        duration, sample_rate = 64, 256
        rng = np.random.default_rng(1)
        noise = rng.standard_normal(duration * sample_rate)
        data = {
            "L1:STRAIN_F64": 1e-21 * noise,
            "L1:WITNESS_F32": np.repeat(np.arange(16, dtype=">f4"), 1024),
            "L1:STATE_U32": np.arange(noise.size, dtype=np.uint32) % 4,
            "L1:FLAGS_I16": np.full(noise.size, -2, dtype=np.int16),
        }
        fname = write_gwf(
            frame_name(tmp_path, "L1", "test", self.gps, duration),
            data,
            self.gps,
            sample_rate,
            units={"L1:STRAIN_F64": "strain", "L1:WITNESS_F32": "m s^-1"},
        )
        expected = {
            "L1:STRAIN_F64": ("8R", "REAL8", np.float64),
            "L1:WITNESS_F32": ("4R", "REAL4", np.float32),
            "L1:STATE_U32": ("4U", "UINT4", np.uint32),
            "L1:FLAGS_I16": ("2S", "INT2", np.int16),
        }
        frame_file = lalframe.FrameUFrFileOpen(str(fname), "r")
        start = lal.LIGOTimeGPS(self.gps)
        for name, (vector, lal_type, dtype) in expected.items():
            channel = lalframe.FrameUFrChanRead(frame_file, name, 0)
            assert lalframe.FrameUFrChanVectorQueryType(channel) == getattr(
                lalframe, f"FRAMEU_FR_VECT_{vector}"
            )

            stream = lalframe.FrStreamOpen(str(tmp_path), fname.name)
            series = getattr(lalframe, f"FrStreamRead{lal_type}TimeSeries")(
                stream, name, start, float(duration), 0
            )
            assert series.name == name
            assert int(series.epoch) == self.gps
            assert series.deltaT == 1 / sample_rate
            np.testing.assert_array_equal(series.data.data, data[name])

            read = TimeSeries.read(fname, name, format="gwf")
            assert read.dtype == dtype
            assert read.t0.value == self.gps
            assert read.sample_rate.value == sample_rate
            np.testing.assert_array_equal(read.value, data[name])
        units = {
            name: str(TimeSeries.read(fname, name, format="gwf").unit)
            for name in ("L1:STRAIN_F64", "L1:WITNESS_F32")
        }
        assert units == {"L1:STRAIN_F64": "strain", "L1:WITNESS_F32": "m / s"}
        # uncompressed floats take all their bytes (gzip would shrink the
        # step-like witness to almost nothing), zero-suppressed integers a
        # fraction of theirs
        float_bytes = sum(
            values.nbytes
            for values in data.values()
            if values.dtype.kind == "f"
        )
        integer_bytes = sum(
            values.nbytes
            for values in data.values()
            if values.dtype.kind != "f"
        )
        size = fname.stat().st_size
        assert float_bytes < size < float_bytes + integer_bytes / 4

    def test_failed_write_leaves_no_file(self, tmp_path, monkeypatch):
        def broken_write(stream, frame):
            raise OSError("disk full")

        monkeypatch.setattr(lalframe, "FrameUFrameHWrite", broken_write)
        fname = frame_name(tmp_path, "H1", "llhoft", self.gps, 1)
        with pytest.raises(OSError, match="disk full"):
            write_gwf(fname, {self.strain: np.zeros(16)}, self.gps, 16)
        assert list(tmp_path.iterdir()) == []

    def test_killed_writer_leaves_a_temporary_the_next_run_removes(
        self, tmp_path, monkeypatch
    ):
        """The temporary is the shared ``.{name}.{host}.{pid}.partial``, which
        ``remove_stale_partials`` deletes once its writer is gone."""
        fname = frame_name(tmp_path, "H1", "llhoft", self.gps, 1)
        seen = []
        real_write = lalframe.FrameUFrameHWrite

        def killed_write(stream, frame):
            real_write(stream, frame)
            seen.extend(tmp_path.iterdir())
            raise KeyboardInterrupt  # stands in for SIGKILL

        monkeypatch.setattr(lalframe, "FrameUFrameHWrite", killed_write)
        with pytest.raises(KeyboardInterrupt):
            write_gwf(fname, {self.strain: np.zeros(16)}, self.gps, 16)
        assert seen == [partial_path(fname)]
        # a writer that died before its cleanup ran: another process id
        stale = partial_path(fname, 999999999)
        stale.write_bytes(b"\0" * 64)
        assert remove_stale_partials(tmp_path) == [stale]


def _lal_frame(
    series: list[tuple[str, np.ndarray, float, float]], gps: float
) -> lalframe.FrameUFrameH:
    """A frame starting at ``gps`` holding float64 ``(name, samples, t0,
    sample_rate)`` series, built with lalframe's high-level API (which
    DIFF_GZIP-compresses them)."""
    duration = max(len(values) / rate for _, values, _, rate in series)
    frame = lalframe.FrameNew(lal.LIGOTimeGPS(gps), duration, "test", 0, 0, 0)
    for name, values, t0, rate in series:
        lal_series = lal.CreateREAL8TimeSeries(
            name, lal.LIGOTimeGPS(t0), 0, 1 / rate, lal.StrainUnit, len(values)
        )
        lal_series.data.data[:] = values
        lalframe.FrameAddREAL8TimeSeriesProcData(frame, lal_series)
    return frame


def _write_lal_frames(fname: Path, frames: list) -> Path:
    stream = lalframe.FrameUFrFileOpen(str(fname), "w")
    for frame in frames:
        lalframe.FrameUFrameHWrite(stream, frame)
    del stream
    return fname


def _gwpy_read(
    fname: Path, channels: list[str]
) -> tuple[dict[str, np.ndarray], float, float]:
    series = TimeSeriesDict.read(
        fname, channels, format="gwf", backend="lalframe"
    )
    first = series[channels[0]]
    return (
        {name: series[name].value for name in channels},
        float(first.t0.value),
        float(first.sample_rate.value),
    )


class TestReadGwf:
    """``read_gwf`` and ``gwf_channels`` read through lalframe's FrameU
    interface what gwpy reads, and refuse incomplete files."""

    gps = 1262304000
    sample_rate = 4096

    def assert_same_as_gwpy(
        self, fname: Path, channels: list[str]
    ) -> dict[str, np.ndarray]:
        data, t0, sample_rate = read_gwf(fname, channels)
        expected, gwpy_t0, gwpy_rate = _gwpy_read(fname, channels)
        assert list(data) == channels
        # gwpy's t0 can be ~0.2 us off the frame's nanosecond GPS time
        assert t0 == pytest.approx(gwpy_t0, abs=1e-6)
        assert sample_rate == gwpy_rate
        for name in channels:
            assert data[name].dtype == expected[name].dtype, name
            np.testing.assert_array_equal(data[name], expected[name])
            assert data[name].flags.writeable
        return data

    def test_every_dtype_written_by_write_gwf(self, tmp_path):
        dtypes = [
            "f8", "f4", "u4", "i4", "u2", "i2", "u8", "i8", "c8", "c16",
        ]  # fmt: skip
        rng = np.random.default_rng(2)
        data = {
            f"H1:X_{dtype.upper()}": (
                rng.standard_normal(self.sample_rate) * 1e3
            ).astype(dtype)
            for dtype in dtypes
        }
        fname = write_gwf(
            tmp_path / "H-H1_test-0-1.gwf", data, self.gps, self.sample_rate
        )
        read = self.assert_same_as_gwpy(fname, list(data))
        for name, values in data.items():
            assert read[name].dtype == values.dtype
            np.testing.assert_array_equal(read[name], values)
        assert sorted(gwf_channels(fname)) == sorted(data)

    def test_compressed_frame_written_by_gwpy(self, tmp_path):
        """gwpy (lalframe's FrameAdd*) DIFF_GZIP-compresses every channel;
        the samples read back decompressed, at a fractional start time."""
        t0 = self.gps + 0.25
        steps = np.repeat(np.arange(16), self.sample_rate // 16)
        series = TimeSeriesDict()
        for dtype in ("f8", "f4", "u4", "i4", "i2"):
            name = f"L1:GWPY_{dtype.upper()}"
            series[name] = TimeSeries(
                steps.astype(dtype),
                t0=t0,
                sample_rate=self.sample_rate,
                channel=name,
            )
        fname = tmp_path / "L-L1_gwpy-1262304000-1.gwf"
        series.write(fname, format="gwf")
        assert fname.stat().st_size < sum(s.nbytes for s in series.values())
        read = self.assert_same_as_gwpy(fname, list(series))
        for name, values in series.items():
            assert read[name].dtype == values.dtype
            np.testing.assert_array_equal(read[name], values.value)
        assert read_gwf(fname, list(series))[1] == t0

    def test_frame_of_the_online_cleaner(self, tmp_path):
        """float64 strain, uint32 state vector, 21 float32 witnesses."""
        rng = np.random.default_rng(3)
        data = {
            "H1:GDS-CALIB_STRAIN": 1e-21 * rng.standard_normal(4096),
            state_vector_channel("H1"): np.full(4096, 3, dtype=np.uint32),
        } | {
            f"H1:PEM-WITNESS_{index:02d}": rng.standard_normal(
                4096, dtype=np.float32
            )
            for index in range(21)
        }
        fname = write_gwf(
            frame_name(tmp_path, "H1", "llhoft", self.gps, 1),
            data,
            self.gps,
            self.sample_rate,
        )
        witnesses = list(data)[2:]
        read = self.assert_same_as_gwpy(fname, witnesses[::-1])
        assert all(read[name].dtype == np.float32 for name in witnesses)
        assert sorted(gwf_channels(fname)) == sorted(data)

    def test_file_of_several_frames_is_joined(self, tmp_path):
        rng = np.random.default_rng(4)
        rate = 256
        seconds = [rng.standard_normal(rate) for _ in range(3)]
        frames = [
            _lal_frame(
                [("V1:A", values, self.gps + index, rate)], self.gps + index
            )
            for index, values in enumerate(seconds)
        ]
        fname = _write_lal_frames(tmp_path / "V-V1_test-0-3.gwf", frames)
        read = self.assert_same_as_gwpy(fname, ["V1:A"])
        np.testing.assert_array_equal(read["V1:A"], np.concatenate(seconds))
        assert gwf_channels(fname) == ["V1:A"]

        gap = _write_lal_frames(
            tmp_path / "V-V1_gap-0-3.gwf", [frames[0], frames[2]]
        )
        with pytest.raises(ValueError, match="one contiguous series"):
            read_gwf(gap, ["V1:A"])

    def test_channels_of_different_timing(self, tmp_path):
        frame = _lal_frame(
            [
                ("H1:FAST", np.zeros(256), self.gps, 256),
                ("H1:SLOW", np.zeros(16), self.gps, 16),
            ],
            self.gps,
        )
        fname = _write_lal_frames(tmp_path / "H-H1_mixed-0-1.gwf", [frame])
        assert read_gwf(fname, ["H1:SLOW"])[2] == 16
        with pytest.raises(ValueError, match="differ in"):
            read_gwf(fname, ["H1:FAST", "H1:SLOW"])

    def test_missing_channels_and_files(self, tmp_path):
        fname = write_gwf(
            tmp_path / "H-H1_test-0-1.gwf",
            {"H1:A": np.zeros(16), "H1:B": np.zeros(16)},
            self.gps,
            16,
        )
        with pytest.raises(
            ValueError,
            match=r"\['H1:C', 'H1:D'\] are not in .* holds \['H1:A', 'H1:B'\]",
        ):
            read_gwf(fname, ["H1:A", "H1:C", "H1:D"])
        with pytest.raises(ValueError, match="no channels"):
            read_gwf(fname, [])
        for function in (gwf_channels, lambda path: read_gwf(path, ["H1:A"])):
            with pytest.raises(FileNotFoundError, match="missing.gwf"):
                function(tmp_path / "missing.gwf")

    @pytest.mark.parametrize(
        "keep", [0, 1, 39, 40, 41, 1000, 0.5, -1000, -46, -20, -1]
    )
    def test_truncated_frame_is_unreadable(self, tmp_path, keep):
        """A frame cut anywhere (``keep`` bytes, a fraction of the file or
        bytes short of its end) raises ValueError naming the file, which
        the online cleaner takes as "retry later"."""
        fname, _ = TestGwf().frame(tmp_path)
        raw = fname.read_bytes()
        size = int(keep * len(raw)) if isinstance(keep, float) else keep
        cut = tmp_path / "H-H1_cut-1262304000-1.gwf"
        cut.write_bytes(raw[:size])
        message = (
            rf"{cut} is not a readable GWF frame \(truncated or still "
            r"being written\?\)"
        )
        with pytest.raises(ValueError, match=message):
            read_gwf(cut, [TestGwf.strain])
        with pytest.raises(ValueError, match=message):
            gwf_channels(cut)

    @pytest.mark.parametrize("damage", ["zeros", "flipped bit"])
    def test_corrupt_frame_is_unreadable(self, tmp_path, damage):
        fname, _ = TestGwf().frame(tmp_path)
        raw = bytearray(fname.read_bytes())
        if damage == "zeros":
            raw = bytearray(len(raw))
        else:  # inside the strain samples: caught by the FrVect checksum
            raw[len(raw) // 4] ^= 0x10
        fname.write_bytes(bytes(raw))
        with pytest.raises(ValueError, match="not a readable GWF frame"):
            read_gwf(fname, [TestGwf.strain, TestGwf.state])


def test_list_and_prune_frames(tmp_path):
    for tag in ("llhoft", "lldetchar", "llhoft_DEEPCLEAN"):
        for gps in (100, 101, 102):
            frame_name(tmp_path, "H1", tag, gps, 1).touch()
    (tmp_path / "notes.txt").touch()
    listed = list_frames(tmp_path, "H1", ("llhoft",))
    assert [name.gps for name, _ in listed] == [100, 101, 102]
    prune_frames(tmp_path, "H1", ("llhoft", "lldetchar"), keep=2, now=103)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [
            "H-H1_llhoft-101-1.gwf",
            "H-H1_llhoft-102-1.gwf",
            "H-H1_lldetchar-101-1.gwf",
            "H-H1_lldetchar-102-1.gwf",
            *(f"H-H1_llhoft_DEEPCLEAN-{gps}-1.gwf" for gps in (100, 101, 102)),
            "notes.txt",
        ]
    )
