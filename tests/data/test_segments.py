"""Segment queries (network calls patched), splitting and segment files."""

import pytest
from gwpy.segments import DataQualityFlag

from deepclean_data.segments import (
    query_segments,
    read_segments,
    split_segment,
    write_segments,
)


class TestQuerySegments:
    start = 1262304000
    end = 1262304000 + 100_000
    active = [
        (1262300000, 1262310000),
        (1262320000, 1262321000),
        (1262330000, 1262370000),
    ]

    @pytest.fixture
    def queries(self, monkeypatch):
        """Patch the DQSegDB and GWOSC calls; record what they were asked."""
        calls = []

        def fake(kind):
            def query(cls, flag, start, end):
                calls.append((kind, flag, start, end))
                return DataQualityFlag(
                    flag, known=[(start, end)], active=self.active
                )

            return classmethod(query)

        monkeypatch.setattr(DataQualityFlag, "query", fake("dqsegdb"))
        monkeypatch.setattr(DataQualityFlag, "fetch_open_data", fake("gwosc"))
        return calls

    def test_simulated(self):
        segments = query_segments(self.start, self.end)
        assert segments == [(self.start, self.end)]

    def test_simulated_gaps(self):
        gap = (self.start + 1000, self.start + 1500)
        segments = query_segments(
            self.start, self.start + 5000, min_duration=600, gaps=[gap]
        )
        assert segments == [
            (self.start, self.start + 1000),
            (self.start + 1500, self.start + 5000),
        ]

    @pytest.mark.parametrize(
        ("source", "flag"),
        [("dqsegdb", "H1:DMT-ANALYSIS_READY:1"), ("gwosc", "H1_DATA")],
    )
    def test_flag_query(self, queries, source, flag):
        segments = query_segments(
            self.start, self.end, flag=flag, min_duration=2000, source=source
        )
        assert queries == [(source, flag, self.start, self.end)]
        # clipped to [start, end); the 1000 s segment is too short
        assert segments == [
            (self.start, 1262310000),
            (1262330000, 1262370000),
        ]

    def test_split_at_max_duration(self, queries):
        segments = query_segments(
            self.start,
            self.end,
            min_duration=4096,
            max_duration=16384,
            source="dqsegdb",
        )
        first = 1262330000
        # 5696 s kept whole; 40000 s = 16384 + 16384 + 7232
        assert segments == [
            (self.start, 1262310000),
            (first, first + 16384),
            (first + 16384, first + 32768),
            (first + 32768, 1262370000),
        ]
        assert all(4096 <= e - s <= 16384 for s, e in segments)

    def test_split_drops_short_remainder(self):
        assert split_segment((0, 250), 60, 100) == [(0, 100), (100, 200)]
        assert split_segment((0, 200), 60, 100) == [(0, 100), (100, 200)]

    def test_errors(self, queries):
        with pytest.raises(ValueError, match="end must be after start"):
            query_segments(self.end, self.start)
        with pytest.raises(ValueError, match="lasts at least min_duration"):
            query_segments(self.start, self.end, min_duration=1e6)
        with pytest.raises(ValueError, match="longest: 40000.0 s"):
            query_segments(
                self.start, self.end, min_duration=50_000, source="gwosc"
            )
        with pytest.raises(ValueError, match="at least min_duration"):
            query_segments(
                self.start, self.end, min_duration=100, max_duration=10
            )
        with pytest.raises(ValueError, match="only apply to the 'simulated'"):
            query_segments(
                self.start, self.end, source="dqsegdb", gaps=[(0, 1)]
            )


class TestSegmentFile:
    def test_round_trip(self, tmp_path):
        segments = [(1262304000.0, 1262308096.0), (1262310000.5, 1262320000)]
        fname = write_segments(tmp_path / "segments.txt", segments)
        lines = fname.read_text().splitlines()
        assert lines[0].startswith("#")
        assert lines[1] == "1262304000 1262308096"
        assert read_segments(fname) == segments

    @pytest.mark.parametrize(
        ("line", "message"),
        [("1 2 3", "expected 'start end'"), ("5 4", "end must be after")],
    )
    def test_bad_line(self, tmp_path, line, message):
        fname = tmp_path / "segments.txt"
        fname.write_text(f"# header\n0 1\n{line}\n")
        with pytest.raises(ValueError, match=f"segments.txt:3: {message}"):
            read_segments(fname)
