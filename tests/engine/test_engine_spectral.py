"""Welch PSD, coherence, ASD ratio and the ASD-ratio loss against
scipy."""

import numpy as np
import pytest
import scipy.signal
import torch

from deepclean_engine import (
    ASDRatioLoss,
    Coherence,
    SpectralDensity,
    asd_ratio,
)

SAMPLE_RATE = 512.0
BANDS = [(55.0, 65.0), (100.0, 110.0)]


def scipy_psd(
    x: np.ndarray, fftlength: float, overlap: float, average: str
) -> tuple[np.ndarray, np.ndarray]:
    return scipy.signal.welch(
        x,
        fs=SAMPLE_RATE,
        nperseg=int(fftlength * SAMPLE_RATE),
        noverlap=int(overlap * SAMPLE_RATE),
        average=average,
        axis=-1,
    )


def in_band(frequencies: np.ndarray) -> np.ndarray:
    return np.any(
        [(frequencies >= low) & (frequencies <= high) for low, high in BANDS],
        axis=0,
    )


class TestSpectralDensity:
    @pytest.mark.parametrize("average", ["median", "mean"])
    @pytest.mark.parametrize(
        ("duration", "fftlength", "overlap"),
        [(8.0, 1.0, 0.5), (9.0, 2.0, 1.0), (6.5, 1.0, 0.25), (3.0, 1.0, 0.0)],
    )
    def test_matches_scipy_welch(
        self, average: str, duration: float, fftlength: float, overlap: float
    ) -> None:
        """Odd and even segment counts (median bias), several overlaps."""
        x = 1e-21 * torch.randn(2, 3, int(duration * SAMPLE_RATE)).double()
        x = x + 1e-20
        density = SpectralDensity(SAMPLE_RATE, fftlength, overlap, average)
        frequencies, expected = scipy_psd(
            x.numpy(), fftlength, overlap, average
        )
        psd = density(x)
        assert psd.dtype == torch.float64
        np.testing.assert_allclose(density.frequencies.numpy(), frequencies)
        np.testing.assert_allclose(psd.numpy(), expected, rtol=1e-10, atol=0)

    @pytest.mark.parametrize("average", ["median", "mean"])
    @pytest.mark.parametrize(
        ("fftlength", "overlap"), [(1.0, 0.5), (0.5, 0.125)]
    )
    def test_in_band_bins_match_scipy_welch(
        self, average: str, fftlength: float, overlap: float
    ) -> None:
        """The matrix-product path (``bands``) gives scipy's in-band bins,
        constant detrending included (a large offset)."""
        x = 1e-21 * torch.randn(2, 3, 8 * int(SAMPLE_RATE)).double() + 1e-18
        density = SpectralDensity(
            SAMPLE_RATE, fftlength, overlap, average, bands=BANDS
        )
        frequencies, expected = scipy_psd(
            x.numpy(), fftlength, overlap, average
        )
        mask = in_band(frequencies)
        np.testing.assert_allclose(
            density.frequencies.numpy(), frequencies[mask]
        )
        np.testing.assert_allclose(
            density(x).numpy(), expected[..., mask], rtol=1e-9, atol=0
        )
        assert set(density.state_dict()) == {"window"}

    def test_bands_without_bins_are_refused(self) -> None:
        with pytest.raises(ValueError, match="no PSD bins fall in bands"):
            SpectralDensity(SAMPLE_RATE, 0.25, bands=[(60.5, 61.5)])

    @pytest.mark.parametrize("average", ["median", "mean"])
    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_non_finite_sample_gives_nan_like_scipy(
        self, average: str, bad: float
    ) -> None:
        """One bad segment of 15: the median must not skip it."""
        x = torch.randn(2, 8 * int(SAMPLE_RATE), dtype=torch.float64)
        x[0, 1000] = bad
        density = SpectralDensity(SAMPLE_RATE, 1.0, 0.5, average)
        with np.errstate(invalid="ignore"):
            _, expected = scipy_psd(x.numpy(), 1.0, 0.5, average)
        psd = density(x)
        assert bool(psd[0].isnan().all()) and bool(psd[1].isfinite().all())
        np.testing.assert_allclose(psd.numpy(), expected, rtol=1e-10, atol=0)

    def test_float32_input_still_computes_in_float64(self) -> None:
        """Strain PSDs (~1e-46) underflow float32; the default is float64."""
        x = 1e-21 * torch.randn(4096)
        psd = SpectralDensity(SAMPLE_RATE, 1.0)(x.float())
        assert psd.dtype == torch.float64
        assert bool((psd[1:] > 0).all())

    def test_state_dict_and_dtype(self) -> None:
        density = SpectralDensity(SAMPLE_RATE, 1.0)
        assert set(density.state_dict()) == {"window"}
        single = SpectralDensity(SAMPLE_RATE, 1.0).to(torch.float32)
        x = torch.randn(4 * int(SAMPLE_RATE))
        assert single(x).dtype == torch.float32
        torch.testing.assert_close(
            single(x).double(), density(x), rtol=1e-4, atol=0
        )

    def test_too_short_input_is_refused(self) -> None:
        with pytest.raises(ValueError, match="shorter than fftlength"):
            SpectralDensity(SAMPLE_RATE, 2.0)(torch.randn(100))


class TestCoherence:
    @staticmethod
    def channels() -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(4)
        reference = rng.standard_normal(round(20 * SAMPLE_RATE))
        noise = rng.standard_normal((3, reference.size))
        x = np.stack(
            [
                reference + noise[0],
                noise[1],
                2 * np.roll(reference, 7) + 0.3 * noise[2],
            ]
        )
        return x, reference

    @pytest.mark.parametrize(
        ("fftlength", "overlap"), [(1.0, None), (2.0, 0.5)]
    )
    def test_matches_scipy(self, fftlength, overlap) -> None:
        x, reference = self.channels()
        nperseg = int(fftlength * SAMPLE_RATE)
        frequencies, expected = scipy.signal.coherence(
            x,
            reference,
            fs=SAMPLE_RATE,
            nperseg=nperseg,
            noverlap=None if overlap is None else int(overlap * SAMPLE_RATE),
        )
        coherence = Coherence(SAMPLE_RATE, fftlength, overlap)
        result = coherence(torch.from_numpy(x), torch.from_numpy(reference))
        np.testing.assert_allclose(result.numpy(), expected, atol=1e-12)
        np.testing.assert_allclose(coherence.frequencies.numpy(), frequencies)
        # independent noise: coherence ~ 1 / segments; delayed copy: ~1
        assert result[1].mean() < 0.2
        assert result[2].mean() > 0.9

    def test_bands_estimate_their_bins_only(self) -> None:
        x, reference = self.channels()
        full = Coherence(SAMPLE_RATE, 1.0)
        banded = Coherence(SAMPLE_RATE, 1.0, bands=BANDS)
        mask = in_band(full.frequencies.numpy())
        x, reference = torch.from_numpy(x), torch.from_numpy(reference)
        np.testing.assert_allclose(
            banded(x, reference).numpy(),
            full(x, reference).numpy()[:, mask],
            atol=1e-12,
        )
        assert banded.num_segments(x.shape[-1]) == 39

    def test_different_lengths_refused(self) -> None:
        with pytest.raises(ValueError, match="same span"):
            Coherence(SAMPLE_RATE, 1.0)(torch.zeros(2, 1024), torch.zeros(512))


class TestASDRatio:
    def test_matches_scipy(self) -> None:
        raw = torch.randn(16 * int(SAMPLE_RATE), dtype=torch.float64)
        cleaned = raw + 0.5 * torch.randn_like(raw)
        ratio = asd_ratio(cleaned, raw, SAMPLE_RATE, BANDS, 2.0, 1.0)
        frequencies, psd_cleaned = scipy_psd(
            cleaned.numpy(), 2.0, 1.0, "median"
        )
        _, psd_raw = scipy_psd(raw.numpy(), 2.0, 1.0, "median")
        mask = in_band(frequencies)
        expected = np.sqrt(psd_cleaned[mask] / psd_raw[mask]).mean()
        assert float(ratio) == pytest.approx(expected, rel=1e-10)

    def test_band_without_bins_is_refused(self) -> None:
        x = torch.randn(4096)
        with pytest.raises(ValueError, match="no PSD bins"):
            asd_ratio(x, x, SAMPLE_RATE, [(60.1, 60.4)], 1.0)


class TestASDRatioLoss:
    @pytest.mark.parametrize("alpha", [1.0, 0.7])
    def test_matches_scipy_reference(self, alpha: float) -> None:
        target = torch.randn(4, int(SAMPLE_RATE))
        prediction = 0.8 * target + 0.1 * torch.randn_like(target)
        prediction.requires_grad_(True)
        loss_fn = ASDRatioLoss(SAMPLE_RATE, BANDS, 0.5, 0.25, alpha=alpha)
        loss = loss_fn(prediction, target)

        y, y_pred = target.double().numpy(), prediction.detach().double()
        residual = y - y_pred.numpy()
        frequencies, psd_residual = scipy_psd(residual, 0.5, 0.25, "median")
        _, psd_target = scipy_psd(y, 0.5, 0.25, "median")
        mask = in_band(frequencies)
        expected = alpha * np.sqrt(
            psd_residual[:, mask] / psd_target[:, mask]
        ).mean() + (1 - alpha) * np.mean(residual**2)
        assert loss.dtype == torch.float64
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-8)

        loss.backward()
        assert prediction.grad is not None
        assert bool(torch.isfinite(prediction.grad).all())

    @pytest.mark.parametrize("alpha", [1.0, 0.7])
    def test_perfect_prediction_has_finite_gradient(
        self, alpha: float
    ) -> None:
        """sqrt at a zero residual PSD would give 0 * inf = NaN."""
        target = torch.randn(2, int(SAMPLE_RATE))
        prediction = target.clone().requires_grad_(True)
        loss = ASDRatioLoss(SAMPLE_RATE, BANDS, 0.5, alpha=alpha)(
            prediction, target
        )
        loss.backward()
        assert float(loss.detach()) == pytest.approx(0.0, abs=1e-9)
        assert bool(torch.isfinite(prediction.grad).all())

    def test_perfect_prediction_scores_lower(self) -> None:
        target = torch.randn(2, int(SAMPLE_RATE))
        loss_fn = ASDRatioLoss(SAMPLE_RATE, BANDS, 0.5)
        good = loss_fn(target + 0.01 * torch.randn_like(target), target)
        bad = loss_fn(torch.zeros_like(target), target)
        assert float(good) < 0.05 < 0.9 < float(bad)

    def test_bad_alpha_is_refused(self) -> None:
        with pytest.raises(ValueError, match="alpha"):
            ASDRatioLoss(SAMPLE_RATE, BANDS, 0.5, alpha=1.5)

    def test_pooled_ratio_matches_scipy_reference(self) -> None:
        target = torch.randn(4, int(SAMPLE_RATE))
        target[0] *= 10.0
        prediction = 0.8 * target + 0.1 * torch.randn_like(target)
        loss = ASDRatioLoss(SAMPLE_RATE, BANDS, 0.5, 0.25, pooled=True)(
            prediction, target
        )

        residual = (target - prediction).double().numpy()
        frequencies, psd_residual = scipy_psd(residual, 0.5, 0.25, "median")
        _, psd_target = scipy_psd(target.double().numpy(), 0.5, 0.25, "median")
        mask = in_band(frequencies)
        expected = np.sqrt(
            psd_residual[:, mask].sum(axis=0) / psd_target[:, mask].sum(axis=0)
        ).mean()
        assert float(loss) == pytest.approx(expected, rel=1e-8)

    def test_pooled_ratio_weighs_windows_by_their_power(self) -> None:
        """Half the loud window left: pooled near 0.5, per window 0.25."""
        target = torch.randn(2, int(SAMPLE_RATE))
        target[0] *= 10.0
        prediction = target.clone()
        prediction[0] *= 0.5
        per_window = ASDRatioLoss(SAMPLE_RATE, BANDS, 0.5)(prediction, target)
        pooled = ASDRatioLoss(SAMPLE_RATE, BANDS, 0.5, pooled=True)(
            prediction, target
        )
        assert float(per_window) == pytest.approx(0.25, abs=0.01)
        assert float(pooled) == pytest.approx(
            0.5 * (100 / 101) ** 0.5, rel=0.05
        )
