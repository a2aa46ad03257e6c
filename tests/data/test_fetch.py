"""Fetching real data, with only the network call (gwpy get) patched."""

import numpy as np
import pytest
from gwpy.timeseries import TimeSeries, TimeSeriesDict

from deepclean_data.fetch import CredentialsError, check_credentials, fetch
from deepclean_io.hdf5 import read_timeseries


def amplitude(values: np.ndarray, sample_rate: float, frequency: float):
    """Amplitude of the sinusoid at ``frequency`` (Hann-windowed FFT)."""
    window = np.hanning(len(values))
    spectrum = np.abs(np.fft.rfft(values * window)) * 2 / window.sum()
    frequencies = np.fft.rfftfreq(len(values), 1 / sample_rate)
    return spectrum[np.argmin(np.abs(frequencies - frequency))]


class TestFetch:
    start = 1262304000
    duration = 8
    native_rate = 16384
    sample_rate = 4096
    strain = "H1:GDS-CALIB_STRAIN"
    mains = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
    asc = "H1:ASC-INP1_P_OUT_DQ"
    rates = {strain: 16384, mains: 16384, asc: 2048}

    @pytest.fixture
    def credentials(self, tmp_path, monkeypatch):
        proxy = tmp_path / "x509up"
        proxy.write_text("proxy")
        monkeypatch.setenv("X509_USER_PROXY", str(proxy))
        monkeypatch.setenv("GWDATAFIND_SERVER", "datafind.example.org:80")

    @pytest.fixture
    def network(self, monkeypatch):
        """Replace TimeSeriesDict.get: a 60 Hz line plus a 3000 Hz line."""
        calls = []

        def get(cls, channels, start, end, **kwargs):
            calls.append((list(channels), start, end, kwargs))
            data = TimeSeriesDict()
            for name in channels:
                if name not in self.rates:
                    raise RuntimeError(f"Failed to read {name} from frames")
                rate = self.rates[name]
                times = np.arange((end - start) * rate) / rate
                values = np.sin(2 * np.pi * 60 * times)
                values += np.sin(2 * np.pi * 3000 * times)
                data[name] = TimeSeries(
                    values.astype(np.float32),
                    t0=start,
                    sample_rate=rate,
                    channel=name,
                    unit="strain" if name == self.strain else "V",
                )
            return data

        monkeypatch.setattr(TimeSeriesDict, "get", classmethod(get))
        return calls

    def run(self, output_dir, channels=None, **kwargs):
        return fetch(
            channels or [self.strain, self.mains],
            self.start,
            self.start + self.duration,
            kwargs.pop("sample_rate", self.sample_rate),
            output_dir,
            gwpy_source="gwdatafind",
            **kwargs,
        )

    def test_fetch_resamples_and_writes(self, tmp_path, credentials, network):
        fname = self.run(tmp_path / "data", prefix="H1")
        assert fname == tmp_path / "data" / "H1-1262304000-8.hdf5"
        channels, start, end, options = network[0]
        assert channels == [self.strain, self.mains]
        assert (start, end) == (self.start, self.start + self.duration)
        assert options == {"source": "gwdatafind", "allow_tape": True}

        data, t0, sample_rate = read_timeseries(fname)
        assert set(data) == {self.strain, self.mains}
        assert (t0, sample_rate) == (self.start, self.sample_rate)
        strain = data[self.strain]
        assert strain.shape == (self.duration * self.sample_rate,)
        assert amplitude(strain, sample_rate, 60) == pytest.approx(1, 1e-3)
        # 3000 Hz is above the 2048 Hz Nyquist frequency: it must not alias
        # to 4096 - 3000 = 1096 Hz
        assert amplitude(strain, sample_rate, 1096) < 1e-3

        series = TimeSeriesDict.read(fname, [self.strain], format="hdf5")
        assert series[self.strain].t0.value == self.start
        assert str(series[self.strain].unit) == "strain"

    def test_upsamples_slow_witness(self, tmp_path, credentials, network):
        fname = self.run(tmp_path, channels=[self.strain, self.asc])
        data, _, sample_rate = read_timeseries(fname)
        asc = data[self.asc]
        assert asc.shape == (self.duration * self.sample_rate,)
        assert amplitude(asc, sample_rate, 60) == pytest.approx(1, 1e-3)

    def test_existing_file(self, tmp_path, credentials, network, monkeypatch):
        fname = self.run(tmp_path)
        modified = fname.stat().st_mtime_ns
        monkeypatch.delenv("GWDATAFIND_SERVER")
        assert self.run(tmp_path) == fname
        assert len(network) == 1
        assert fname.stat().st_mtime_ns == modified
        with pytest.raises(FileExistsError, match="different channels"):
            self.run(tmp_path, channels=[self.strain, self.asc])
        with pytest.raises(FileExistsError, match="span/rate"):
            self.run(tmp_path, sample_rate=2048)

    def test_unknown_channel(self, tmp_path, credentials, network):
        with pytest.raises(ValueError, match="unknown channel 'H1:NOPE'"):
            self.run(tmp_path, channels=[self.strain, "H1:NOPE"])
        assert not list(tmp_path.glob("*.hdf5"))

    @pytest.mark.parametrize("sample_rate", [4000, 4096.5])
    def test_bad_sample_rate(
        self, tmp_path, credentials, network, sample_rate
    ):
        with pytest.raises(ValueError, match="cannot resample|whole number"):
            self.run(tmp_path, sample_rate=sample_rate)

    def test_bad_span(self, tmp_path):
        with pytest.raises(ValueError, match="end must be after start"):
            fetch([self.strain], self.start, self.start, 4096, tmp_path)


class TestCredentials:
    @pytest.fixture
    def bare(self, tmp_path):
        """An environment with no credential of any kind."""
        return {
            "X509_USER_PROXY": str(tmp_path / "no-proxy"),
            "BEARER_TOKEN_FILE": str(tmp_path / "no-token"),
            "KRB5CCNAME": f"FILE:{tmp_path / 'no-ticket'}",
        }

    def test_gwdatafind(self, bare):
        with pytest.raises(CredentialsError) as error:
            check_credentials("gwdatafind", bare)
        assert "ligo-proxy-init -p albert.einstein" in str(error.value)
        assert "X509_USER_PROXY" in str(error.value)
        assert "GWDATAFIND_SERVER is not set" in str(error.value)

    def test_gwdatafind_server_only(self, bare, tmp_path):
        proxy = tmp_path / "proxy"
        proxy.write_text("proxy")
        bare["X509_USER_PROXY"] = str(proxy)
        with pytest.raises(CredentialsError) as error:
            check_credentials("gwdatafind", bare)
        assert "ligo-proxy-init" not in str(error.value)
        assert "GWDATAFIND_SERVER" in str(error.value)
        check_credentials("gwdatafind", {**bare, "GWDATAFIND_SERVER": "x:80"})

    def test_nds2(self, bare):
        with pytest.raises(CredentialsError, match="kinit"):
            check_credentials("nds2", bare)

    def test_any_source_lists_every_step(self, bare):
        with pytest.raises(CredentialsError) as error:
            check_credentials(None, bare)
        assert "gwdatafind:" in str(error.value)
        assert "nds2:" in str(error.value)

    def test_fetch_checks_before_network(self, tmp_path, monkeypatch, bare):
        for name, value in bare.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GWDATAFIND_SERVER", raising=False)
        monkeypatch.setattr(
            TimeSeriesDict,
            "get",
            classmethod(lambda *args, **kwargs: pytest.fail("network")),
        )
        with pytest.raises(CredentialsError, match="GWDATAFIND_SERVER"):
            fetch(["H1:A"], 0, 8, 4096, tmp_path, gwpy_source="gwdatafind")
