"""Low-latency frame replay: names, contents, pacing, pruning, atomicity."""

from pathlib import Path

import numpy as np
import pytest

from deepclean_data import replay as replay_module
from deepclean_data.replay import replay
from deepclean_io.gwf import parse_frame_name, read_gwf, write_gwf
from deepclean_io.hdf5 import read_timeseries, write_timeseries


class FakeClock:
    """Wall clock that only moves when slept on or told to."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


class TestReplay:
    t0 = 1262304000
    duration = 6
    sample_rate = 256
    strain = "H1:GDS-CALIB_STRAIN"
    witnesses = ["H1:PEM-CS_MAINSMON_EBAY_1_DQ", "H1:ASC-INP1_P_OUT_DQ"]

    @pytest.fixture
    def data_file(self, tmp_path) -> Path:
        rng = np.random.default_rng(1)
        num_samples = self.duration * self.sample_rate
        data = {
            name: rng.standard_normal(num_samples)
            for name in [self.strain, *self.witnesses]
        }
        return write_timeseries(
            tmp_path / f"H1-{self.t0}-{self.duration}.hdf5",
            data,
            self.t0,
            self.sample_rate,
        )

    @pytest.fixture
    def writes(self, monkeypatch) -> list[tuple[float, str]]:
        """Record (fake wall time, file name) of every frame write."""
        log = []

        def recording_write(fname, *args, **kwargs):
            log.append((self.clock.now, Path(fname).name))
            return write_gwf(fname, *args, **kwargs)

        self.clock = FakeClock(now=1000.25)
        monkeypatch.setattr(replay_module, "write_gwf", recording_write)
        return log

    def run(self, data_file, output_dir, **kwargs):
        return replay(
            data_file,
            output_dir,
            self.strain,
            progress=False,
            **kwargs,
        )

    def test_frames_hold_the_data(self, data_file, tmp_path):
        frames = self.run(data_file, tmp_path / "frames", start=self.t0 + 2)
        assert len(frames) == 4
        hoft, detchar = frames[0]
        assert hoft.name == "H-H1_llhoft-1262304002-1.gwf"
        assert detchar.name == "H-H1_lldetchar-1262304002-1.gwf"
        state = "H1:GDS-CALIB_STATE_VECTOR"
        data, t0, sample_rate = read_gwf(hoft, [self.strain, state])
        assert (t0, sample_rate) == (self.t0 + 2, self.sample_rate)
        assert np.all((data[state] & 3) == 3)
        assert data[state].shape == (self.sample_rate,)
        witnesses, _, _ = read_gwf(detchar, self.witnesses)
        frame = slice(2 * self.sample_rate, 3 * self.sample_rate)
        source, _, _ = read_timeseries(data_file)
        np.testing.assert_array_equal(
            data[self.strain], source[self.strain][frame]
        )
        for name in self.witnesses:
            np.testing.assert_array_equal(witnesses[name], source[name][frame])
        names = sorted(p.name for p in (tmp_path / "frames").iterdir())
        assert len(names) == 8
        assert not [name for name in names if name.startswith(".")]

    def test_realtime_pacing(self, data_file, tmp_path, writes):
        self.run(
            data_file,
            tmp_path,
            duration=4,
            realtime=True,
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        assert len(writes) == 8
        pairs = zip(writes[::2], writes[1::2], strict=True)
        for index, ((t_detchar, detchar), (t_hoft, hoft)) in enumerate(pairs):
            gps = parse_frame_name(hoft).gps
            assert gps == self.t0 + index
            assert parse_frame_name(detchar).gps == gps
            assert detchar.startswith("H-H1_lldetchar")  # witnesses first
            # one pair per second, on whole seconds of the wall clock
            assert t_detchar == t_hoft == 1001 + index
        assert self.clock.sleeps == pytest.approx([0.75, 1, 1, 1])

    def test_realtime_catches_up(self, data_file, tmp_path, writes, caplog):
        def slow_sleep(seconds):
            self.clock.sleep(seconds)
            self.clock.now += 2.5 if len(self.clock.sleeps) == 1 else 0

        self.run(
            data_file,
            tmp_path,
            realtime=True,
            clock=self.clock,
            sleep=slow_sleep,
        )
        times = [time for time, _ in writes[::2]]
        # the first frame is late by 2.5 s; the next two go out at once
        assert times == [1003.5, 1003.5, 1003.5, 1004, 1005, 1006]
        assert "behind the wall clock" in caplog.text

    def test_prune(self, data_file, tmp_path):
        other = tmp_path / "L-L1_llhoft-1262304000-1.gwf"
        other.write_bytes(b"")
        notes = tmp_path / "notes.txt"
        notes.write_text("keep me")
        frames = self.run(data_file, tmp_path, keep=2)
        kept = sorted(parse_frame_name(p).gps for p in tmp_path.glob("H-*"))
        assert kept == [self.t0 + 4] * 2 + [self.t0 + 5] * 2
        assert all(p.exists() for pair in frames[-2:] for p in pair)
        assert other.exists() and notes.exists()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"start": 1262303999}, "cannot replay"),
            ({"duration": 7}, "cannot replay"),
            ({"witnesses": ["H1:NOPE"]}, r"\['H1:NOPE'\] are not in"),
            ({"keep": 0}, "keep=0"),
        ],
    )
    def test_errors(self, data_file, tmp_path, kwargs, message):
        with pytest.raises(ValueError, match=message):
            self.run(data_file, tmp_path, **kwargs)
