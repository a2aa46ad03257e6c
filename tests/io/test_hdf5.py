"""Tests for deepclean_io.hdf5: gwpy's HDF5 time series layout."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from gwpy.timeseries import TimeSeries, TimeSeriesDict

from deepclean_io.atomic import partial_path
from deepclean_io.hdf5 import (
    SUBTRACTED_ATTRIBUTE,
    TimeSeriesInfo,
    TimeSeriesWriter,
    check_subtracted,
    contiguous_files,
    file_info,
    hdf5_name,
    parse_hdf5_name,
    read_timeseries,
    write_timeseries,
)

STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESS = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
T0 = 1_250_000_000.0
SAMPLE_RATE = 256.0
NUM_SAMPLES = 1024


@pytest.fixture
def channel_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        STRAIN: 1e-21 * rng.standard_normal(NUM_SAMPLES),
        WITNESS: rng.standard_normal(NUM_SAMPLES).astype(np.float32),
    }


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


class TestNames:
    def test_integral_times_are_written_as_integers(self):
        name = hdf5_name("deepclean", 1250000000.0, 4096.0)
        assert name == "deepclean-1250000000-4096.hdf5"

    def test_fractional_times_round_trip(self):
        name = hdf5_name("H-H1_dc", 1250000000.5, 0.25)
        assert name == "H-H1_dc-1250000000.5-0.25.hdf5"
        assert parse_hdf5_name(Path("/a/b") / name) == (
            "H-H1_dc",
            1250000000.5,
            0.25,
        )

    def test_bad_names_are_refused(self):
        with pytest.raises(ValueError, match="does not follow"):
            parse_hdf5_name("deepclean_1250000000_4096.hdf5")
        with pytest.raises(ValueError, match="duration"):
            hdf5_name("deepclean", T0, 0)
        with pytest.raises(ValueError, match="path separators"):
            hdf5_name("data/deepclean", T0, 16)


class TestWriteRead:
    def test_round_trip_keeps_values_dtypes_and_timing(
        self, tmp_path, channel_data
    ):
        fname = tmp_path / hdf5_name("deepclean", T0, 4)
        written = write_timeseries(
            fname, channel_data, T0, SAMPLE_RATE, units={STRAIN: "strain"}
        )
        assert written == fname
        data, t0, sample_rate = read_timeseries(fname)
        assert (t0, sample_rate) == (T0, SAMPLE_RATE)
        assert list(data) == [STRAIN, WITNESS]
        for name, array in channel_data.items():
            assert data[name].dtype == array.dtype
            np.testing.assert_array_equal(data[name], array)
        assert file_info(fname) == TimeSeriesInfo(
            channels=(STRAIN, WITNESS),
            t0=T0,
            sample_rate=SAMPLE_RATE,
            duration=NUM_SAMPLES / SAMPLE_RATE,
            units={STRAIN: "strain", WITNESS: ""},
        )

    def test_root_attributes(self, tmp_path, channel_data):
        fname = write_timeseries(
            tmp_path / "x-1-4.hdf5",
            channel_data,
            T0,
            SAMPLE_RATE,
            attrs={SUBTRACTED_ATTRIBUTE: "NOMAD"},
        )
        info = file_info(fname)
        assert info.attrs == {SUBTRACTED_ATTRIBUTE: "NOMAD"}
        with pytest.raises(ValueError, match="holds strain with NOMAD's"):
            check_subtracted(fname, info, None, "the model", "fix it")
        check_subtracted(fname, info, "NOMAD", "the model", "fix it")

    def test_span_channel_selection_and_dtype(self, tmp_path, channel_data):
        fname = write_timeseries(
            tmp_path / "x-1-4.hdf5", channel_data, T0, SAMPLE_RATE
        )
        data, t0, _ = read_timeseries(
            fname, [WITNESS], start=T0 + 1, end=T0 + 2.5, dtype=np.float64
        )
        assert list(data) == [WITNESS]
        assert t0 == T0 + 1
        assert data[WITNESS].dtype == np.float64
        np.testing.assert_array_equal(
            data[WITNESS], channel_data[WITNESS][256:640]
        )

    def test_start_between_samples_begins_at_next_sample(
        self, tmp_path, channel_data
    ):
        fname = write_timeseries(
            tmp_path / "x-1-4.hdf5", channel_data, T0, SAMPLE_RATE
        )
        data, t0, _ = read_timeseries(fname, [STRAIN], start=T0 + 0.001)
        assert t0 == T0 + 1 / SAMPLE_RATE
        assert len(data[STRAIN]) == NUM_SAMPLES - 1

    def test_gwpy_reads_our_files(self, tmp_path, channel_data):
        fname = write_timeseries(
            tmp_path / "x-1-4.hdf5",
            channel_data,
            T0,
            SAMPLE_RATE,
            units={STRAIN: "strain", WITNESS: "ct"},
        )
        series = TimeSeriesDict.read(fname, format="hdf5")
        assert set(series) == {STRAIN, WITNESS}
        strain = series[STRAIN]
        assert strain.t0.value == T0
        assert strain.sample_rate.value == SAMPLE_RATE
        assert str(strain.unit) == "strain"
        assert str(series[WITNESS].unit) == "ct"
        assert strain.channel.name == STRAIN
        np.testing.assert_array_equal(strain.value, channel_data[STRAIN])

    def test_we_read_gwpy_files(self, tmp_path, channel_data):
        fname = tmp_path / "gwpy-1250000000-4.hdf5"
        series = TimeSeriesDict(
            {
                name: TimeSeries(
                    array,
                    t0=T0,
                    sample_rate=SAMPLE_RATE,
                    name=name,
                    channel=name,
                    unit="strain" if name == STRAIN else "ct",
                )
                for name, array in channel_data.items()
            }
        )
        series.write(fname, format="hdf5")
        data, t0, sample_rate = read_timeseries(fname, [STRAIN, WITNESS])
        assert (t0, sample_rate) == (T0, SAMPLE_RATE)
        for name, array in channel_data.items():
            np.testing.assert_array_equal(data[name], array)
        assert file_info(fname).channels == (STRAIN, WITNESS)


class TestStreamingWriter:
    def test_chunks_concatenate(self, tmp_path, channel_data):
        fname = tmp_path / "stream-1250000000-4.hdf5"
        with TimeSeriesWriter(
            fname, [STRAIN, WITNESS], T0, SAMPLE_RATE, NUM_SAMPLES
        ) as writer:
            for first in range(0, NUM_SAMPLES, 300):
                writer.write(
                    {
                        name: array[first : first + 300]
                        for name, array in channel_data.items()
                    }
                )
                assert not fname.exists()
        data, _, _ = read_timeseries(fname)
        for name, array in channel_data.items():
            np.testing.assert_array_equal(data[name], array)
        assert files_in(tmp_path) == [fname.name]

    def test_exception_leaves_no_file(self, tmp_path, channel_data):
        fname = tmp_path / "stream-1250000000-4.hdf5"
        with (
            pytest.raises(RuntimeError, match="boom"),
            TimeSeriesWriter(
                fname, [STRAIN, WITNESS], T0, SAMPLE_RATE, NUM_SAMPLES
            ) as writer,
        ):
            writer.write({k: v[:100] for k, v in channel_data.items()})
            raise RuntimeError("boom")
        assert files_in(tmp_path) == []

    def test_incomplete_file_is_refused_and_removed(
        self, tmp_path, channel_data
    ):
        fname = tmp_path / "stream-1250000000-4.hdf5"
        with (
            pytest.raises(ValueError, match="100 of 1024 samples"),
            TimeSeriesWriter(
                fname, [STRAIN, WITNESS], T0, SAMPLE_RATE, NUM_SAMPLES
            ) as writer,
        ):
            writer.write({k: v[:100] for k, v in channel_data.items()})
        assert files_in(tmp_path) == []

    def test_failed_overwrite_keeps_previous_file(
        self, tmp_path, channel_data
    ):
        fname = write_timeseries(
            tmp_path / "x-1-4.hdf5", channel_data, T0, SAMPLE_RATE
        )
        with (
            pytest.raises(ValueError, match="missing"),
            TimeSeriesWriter(
                fname, [STRAIN, WITNESS], T0, SAMPLE_RATE, NUM_SAMPLES
            ) as writer,
        ):
            writer.write({STRAIN: channel_data[STRAIN]})
        data, _, _ = read_timeseries(fname)
        np.testing.assert_array_equal(data[STRAIN], channel_data[STRAIN])
        assert files_in(tmp_path) == [fname.name]

    def test_chunk_errors(self, tmp_path, channel_data):
        fname = tmp_path / "stream-1250000000-4.hdf5"
        with TimeSeriesWriter(
            fname, [STRAIN, WITNESS], T0, SAMPLE_RATE, NUM_SAMPLES
        ) as writer:
            with pytest.raises(ValueError, match="equal length"):
                writer.write({STRAIN: np.zeros(3), WITNESS: np.zeros(4)})
            with pytest.raises(ValueError, match="exceed the 1024"):
                writer.write({STRAIN: np.zeros(2000), WITNESS: np.zeros(2000)})
            writer.write(channel_data)
        assert fname.exists()

    def test_missing_folder_is_named(self, tmp_path, channel_data):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            write_timeseries(
                tmp_path / "nowhere" / "x-1-4.hdf5",
                channel_data,
                T0,
                SAMPLE_RATE,
            )


class TestReadErrors:
    def test_missing_channel_lists_what_the_file_has(
        self, tmp_path, channel_data
    ):
        fname = write_timeseries(
            tmp_path / "x-1-4.hdf5", channel_data, T0, SAMPLE_RATE
        )
        with pytest.raises(ValueError, match=r"\['H1:NOPE'\].*holds.*MAINS"):
            read_timeseries(fname, [STRAIN, "H1:NOPE"])

    def test_span_outside_file(self, tmp_path, channel_data):
        fname = write_timeseries(
            tmp_path / "x-1-4.hdf5", channel_data, T0, SAMPLE_RATE
        )
        with pytest.raises(ValueError, match="outside"):
            read_timeseries(fname, start=T0 - 1)
        with pytest.raises(ValueError, match="outside"):
            read_timeseries(fname, end=T0 + 5)
        with pytest.raises(ValueError, match="after start"):
            read_timeseries(fname, start=T0 + 2, end=T0 + 1)

    def test_different_sample_rates(self, tmp_path, channel_data):
        fname = tmp_path / "mixed-1250000000-4.hdf5"
        TimeSeriesDict(
            {
                STRAIN: TimeSeries(
                    channel_data[STRAIN], t0=T0, sample_rate=SAMPLE_RATE
                ),
                WITNESS: TimeSeries(
                    channel_data[WITNESS][::2], t0=T0, sample_rate=128
                ),
            }
        ).write(fname, format="hdf5")
        with pytest.raises(ValueError, match="different sample rates"):
            read_timeseries(fname)
        data, _, sample_rate = read_timeseries(fname, [WITNESS])
        assert sample_rate == 128
        assert len(data[WITNESS]) == NUM_SAMPLES // 2

    def test_not_gwpy_layout(self, tmp_path):
        fname = tmp_path / "bare-1250000000-4.hdf5"
        with h5py.File(fname, "w") as h5file:
            h5file["H1:X"] = np.zeros(4)
        with pytest.raises(ValueError, match="'x0'"):
            file_info(fname)


class TestDamagedFiles:
    """Files a killed copy, a full disk or a crash leave behind: errors
    name the file, the problem and the fix instead of h5py tracebacks."""

    @pytest.fixture
    def whole(self, tmp_path, channel_data) -> Path:
        return write_timeseries(
            tmp_path / "whole-1250000000-4.hdf5",
            channel_data,
            T0,
            SAMPLE_RATE,
        )

    def damaged(self, tmp_path: Path, whole: Path, kind: str) -> Path:
        fname = tmp_path / f"{kind}-1250000000-4.hdf5"
        content = whole.read_bytes()
        if kind == "empty":
            fname.write_bytes(b"")
        elif kind == "zeros":
            fname.write_bytes(bytes(len(content)))
        elif kind == "truncated":
            fname.write_bytes(content[: len(content) // 2])
        elif kind == "scrambled_header":
            fname.write_bytes(content[:200] + bytes(200) + content[400:])
        return fname

    @pytest.mark.parametrize(
        "kind", ["empty", "zeros", "truncated", "scrambled_header"]
    )
    @pytest.mark.parametrize("reader", [file_info, read_timeseries])
    def test_unreadable_file(self, tmp_path, whole, kind, reader):
        fname = self.damaged(tmp_path, whole, kind)
        with pytest.raises(ValueError) as caught:
            reader(fname)
        message = str(caught.value)
        assert str(fname) in message
        assert "not a readable HDF5 file (truncated or corrupt?" in message
        assert "re-run Fetch" in message

    def test_file_without_datasets(self, tmp_path):
        fname = tmp_path / "groups-1250000000-4.hdf5"
        with h5py.File(fname, "w") as h5file:
            h5file.create_group("H1:X")
        with pytest.raises(ValueError, match="holds no time series") as e:
            read_timeseries(fname)
        assert str(fname) in str(e.value) and "re-run Fetch" in str(e.value)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nothing-1-4.hdf5"):
            file_info(tmp_path / "nothing-1-4.hdf5")


class TestContiguousFiles:
    """Back-to-back files of one segment read as one series."""

    def split(
        self, folder: Path, channel_data, pieces: list[tuple[int, int]]
    ) -> list[Path]:
        """Write samples ``[a, b)`` of ``channel_data`` per file."""
        return [
            write_timeseries(
                folder
                / hdf5_name(
                    "part", T0 + a / SAMPLE_RATE, (b - a) / SAMPLE_RATE
                ),
                {name: array[a:b] for name, array in channel_data.items()},
                T0 + a / SAMPLE_RATE,
                SAMPLE_RATE,
            )
            for a, b in pieces
        ]

    def test_read_across_boundaries(self, tmp_path, channel_data):
        files = self.split(
            tmp_path, channel_data, [(512, 1024), (0, 256), (256, 512)]
        )
        (segment,) = contiguous_files(files)
        assert segment.files == (files[1], files[2], files[0])
        assert (segment.t0, segment.end) == (T0, T0 + 4)
        data, t0, sample_rate = segment.read(
            [WITNESS, STRAIN], T0 + 0.5, T0 + 3.5
        )
        assert (t0, sample_rate) == (T0 + 0.5, SAMPLE_RATE)
        for name in (WITNESS, STRAIN):
            np.testing.assert_array_equal(
                data[name], channel_data[name][128:896]
            )
        with pytest.raises(ValueError, match="outside"):
            segment.read([STRAIN], T0 + 3, T0 + 5)

    def test_gap_splits_segments(self, tmp_path, channel_data):
        files = self.split(tmp_path, channel_data, [(0, 256), (512, 1024)])
        segments = contiguous_files(files)
        assert [(s.t0, s.end) for s in segments] == [
            (T0, T0 + 1),
            (T0 + 2, T0 + 4),
        ]

    def test_overlap_names_both_files(self, tmp_path, channel_data):
        files = self.split(tmp_path, channel_data, [(0, 512), (384, 1024)])
        with pytest.raises(ValueError, match="overlap") as caught:
            contiguous_files(files)
        message = str(caught.value)
        assert str(files[0]) in message and str(files[1]) in message
        assert f"[{T0 + 1.5!r}, {T0 + 4.0!r})" in message


def test_killed_writer_temporary_is_the_shared_partial(tmp_path, channel_data):
    """The writer's temporary is ``partial_path(fname)``, so a re-run's
    ``remove_stale_partials`` finds what a killed writer left."""
    fname = tmp_path / "stream-1250000000-4.hdf5"
    writer = TimeSeriesWriter(
        fname, [STRAIN, WITNESS], T0, SAMPLE_RATE, NUM_SAMPLES
    )
    with writer:
        writer.write({name: a[:10] for name, a in channel_data.items()})
        assert files_in(tmp_path) == [partial_path(fname).name]
        writer.write({name: a[10:] for name, a in channel_data.items()})
    assert files_in(tmp_path) == [fname.name]
