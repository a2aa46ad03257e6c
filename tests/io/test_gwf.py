"""GWF frames: names, atomic writes, round trip through gwpy and lalframe."""

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
    parse_frame_name,
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
