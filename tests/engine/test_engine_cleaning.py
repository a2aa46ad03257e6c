"""Cleaning engine: stitching, alignment, streaming == offline, bad input."""

import numpy as np
import pytest
import scipy.signal
import torch

from deepclean_engine import (
    CleanedSegment,
    CleaningConfig,
    CleaningEngine,
    asd_ratio,
    butterworth_sos,
    overlap_add,
    stitch_window,
)

SAMPLE_RATE = 512.0
GPS_START = 1_000_000_000
STRAIN_SCALE = 1e-21
BAND = (55.0, 65.0)
EDGE_HANDLING = [
    {"edge_handling": "edge_pad"},
    {"edge_handling": "edge_pad", "keep_offset": 0.3125},
    {"edge_handling": "overlap_add"},
    {
        "edge_handling": "overlap_add",
        "kernel_length": 2.0,
        "inference_sampling_rate": 4.0,
        "frame_length": 0.5,
    },
]


def make_config(**overrides: object) -> CleaningConfig:
    values = {"sample_rate": SAMPLE_RATE, "bands": [BAND]} | overrides
    return CleaningConfig(**values)


class PerfectWitness(torch.nn.Module):
    """Noise model whose witness channel 0 is the coupled noise itself."""

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return STRAIN_SCALE * witnesses[:, 0]


class ConvModel(torch.nn.Module):
    """Small random convolutional noise model (with BatchNorm)."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv1d(num_channels, 4, 9, padding=4),
            torch.nn.BatchNorm1d(4),
            torch.nn.Tanh(),
            torch.nn.Conv1d(4, 1, 9, padding=4),
        )

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return STRAIN_SCALE * self.layers(witnesses)[:, 0]


def simulate(duration: float) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Raw strain, witnesses and the true coupled noise.

    The coupled noise lies in 57-63 Hz (so the 55-65 Hz band-pass leaves
    it intact), on top of a white background with 1000x less standard
    deviation. Witness 0 is the coupled noise in units of STRAIN_SCALE.
    """
    size = int(duration * SAMPLE_RATE)
    rng = np.random.default_rng(7)
    narrow = scipy.signal.butter(
        8, (57.0, 63.0), btype="bandpass", output="sos", fs=SAMPLE_RATE
    )
    coupled = scipy.signal.sosfiltfilt(narrow, rng.standard_normal(size))
    coupled *= STRAIN_SCALE / coupled.std()
    background = 1e-3 * STRAIN_SCALE * rng.standard_normal(size)
    strain = torch.from_numpy(background + coupled)
    witnesses = torch.stack(
        [
            torch.from_numpy(coupled / STRAIN_SCALE),
            torch.from_numpy(rng.standard_normal(size)),
        ]
    ).float()
    return strain, witnesses, coupled


def crop(reference: np.ndarray, segment: CleanedSegment) -> np.ndarray:
    start = round((segment.t0 - GPS_START) * SAMPLE_RATE)
    return reference[start : start + segment.cleaned.shape[0]]


def stream_chunks(
    engine: CleaningEngine,
    strain: torch.Tensor,
    witnesses: torch.Tensor,
    t0: float,
    chunk: float,
    prior: torch.Tensor | None = None,
) -> list[CleanedSegment]:
    """Every frame a stream emits, fed ``chunk`` s at a time."""
    cleaner = engine.stream()
    size = int(chunk * SAMPLE_RATE)
    emitted = []
    for start in range(0, strain.shape[0], size):
        segment = cleaner.push(
            strain[start : start + size],
            witnesses[:, start : start + size],
            t0 + start / SAMPLE_RATE,
            None if prior is None else prior[start : start + size],
        )
        if segment is not None:
            emitted.extend(segment.frames())
    return emitted


class TestStitching:
    @pytest.mark.parametrize(
        "overrides",
        EDGE_HANDLING
        + [
            {"edge_handling": "overlap_add", "inference_sampling_rate": 4},
            {"edge_handling": "edge_pad", "inference_sampling_rate": 1},
            {"edge_handling": "overlap_add", "kernel_length": 2.0},
        ],
    )
    def test_weights_sum_to_one(self, overrides: dict) -> None:
        """Bug 9: overlap-add weights that sum to 0.5 halve the noise."""
        config = make_config(**overrides)
        weights = stitch_window(config)
        num_windows = 12
        stitched = overlap_add(
            torch.ones(num_windows, config.kernel_size, dtype=torch.float64),
            weights,
            config.stride_size,
        )
        first, last = config.stitch_support
        final = stitched[
            last - config.stride_size : num_windows * config.stride_size
            + first
        ]
        assert final.shape[0] >= config.stride_size
        torch.testing.assert_close(
            final, torch.ones_like(final), rtol=0, atol=1e-12
        )

    @pytest.mark.parametrize(
        ("kernel", "stride", "kept"),
        [(8, 3, None), (8, 4, None), (8, 4, (2, 6)), (10, 4, (4, 8))],
    )
    def test_overlap_add_matches_a_loop(
        self, kernel: int, stride: int, kept: tuple[int, int] | None
    ) -> None:
        """Strides that do and do not divide the kernel, and edge_pad-like
        weights that are zero on whole blocks."""
        predictions = torch.randn(5, kernel, dtype=torch.float64)
        weights = torch.rand(kernel, dtype=torch.float64)
        if kept is not None:
            weights = torch.zeros(kernel, dtype=torch.float64)
            weights[kept[0] : kept[1]] = 1
        expected = torch.zeros(4 * stride + kernel, dtype=torch.float64)
        for index, prediction in enumerate(predictions):
            start = stride * index
            expected[start : start + kernel] += weights * prediction
        torch.testing.assert_close(
            overlap_add(predictions, weights, stride),
            expected,
            rtol=1e-15,
            atol=1e-15,
        )


class TestAlignment:
    """A known noise series comes out of predict -> stitch -> subtract."""

    @pytest.mark.parametrize("overrides", EDGE_HANDLING)
    def test_cleaned_is_raw_minus_bandpassed_noise(
        self, overrides: dict
    ) -> None:
        strain, witnesses, coupled = simulate(48.0)
        config = make_config(filter_pad=4.0, **overrides)
        engine = CleaningEngine(PerfectWitness(), config, batch_size=7)
        segment = engine.clean(strain, witnesses, GPS_START)
        kernel, stride = config.kernel_size, config.stride_size
        frame, pad = config.frame_size, config.pad_size
        first, last = config.stitch_support
        size = strain.shape[0]
        first_frame = -(-(last - stride + pad) // frame)
        noise_end = ((size - kernel) // stride + 1) * stride + first
        end_frame = (noise_end - pad) // frame
        assert segment.t0 == GPS_START + first_frame * frame / SAMPLE_RATE
        assert segment.num_frames == end_frame - first_frame
        assert not bool(segment.flagged.any())

        sos = butterworth_sos([BAND], SAMPLE_RATE)[0]
        expected_noise = crop(scipy.signal.sosfiltfilt(sos, coupled), segment)
        scale = np.abs(expected_noise).max()
        np.testing.assert_allclose(
            segment.noise.numpy(), expected_noise, rtol=0, atol=1e-6 * scale
        )
        np.testing.assert_allclose(
            segment.cleaned.numpy(),
            crop(strain.numpy(), segment) - expected_noise,
            rtol=0,
            atol=1e-6 * scale,
        )
        ratio = asd_ratio(
            segment.cleaned, segment.raw, SAMPLE_RATE, [(57, 63)], 2.0
        )
        assert float(ratio) < 0.01

    def test_default_pad_is_accurate_to_its_energy(self) -> None:
        strain, witnesses, coupled = simulate(48.0)
        engine = CleaningEngine(PerfectWitness(), make_config())
        segment = engine.clean(strain, witnesses, GPS_START)
        sos = butterworth_sos([BAND], SAMPLE_RATE)[0]
        expected = crop(scipy.signal.sosfiltfilt(sos, coupled), segment)
        error = np.std(segment.noise.numpy() - expected) / np.std(expected)
        assert error < 1e-2

    def test_required_span_covers_the_request(self) -> None:
        strain, witnesses, _ = simulate(48.0)
        engine = CleaningEngine(PerfectWitness(), make_config())
        start, end = GPS_START + 10, GPS_START + 20
        data_start, data_end = engine.required_span(start, end)
        first = round((data_start - GPS_START) * SAMPLE_RATE)
        last = round((data_end - GPS_START) * SAMPLE_RATE)
        segment = engine.clean(
            strain[first:last], witnesses[:, first:last], data_start
        )
        assert segment.t0 <= start
        assert segment.t0 + segment.duration >= end

    def test_batch_size_and_device_do_not_change_the_result(self) -> None:
        strain, witnesses, _ = simulate(12.0)
        model = ConvModel(2).eval()
        config = make_config()
        one = CleaningEngine(model, config, batch_size=1, device="cpu")
        many = CleaningEngine(model, config, batch_size=64)
        first = one.clean(strain, witnesses, GPS_START)
        second = many.clean(strain, witnesses, GPS_START)
        assert first.cleaned.device == torch.device("cpu")
        torch.testing.assert_close(first.cleaned, second.cleaned)


class TestStreaming:
    @pytest.mark.parametrize("overrides", EDGE_HANDLING)
    @pytest.mark.parametrize(
        ("offset", "chunk"), [(0.0, 1.0), (0.25, 0.75), (0.0, 2.5)]
    )
    def test_streaming_equals_offline(
        self, overrides: dict, offset: float, chunk: float
    ) -> None:
        strain, witnesses, _ = simulate(20.0)
        engine = CleaningEngine(ConvModel(2).eval(), make_config(**overrides))
        begin = int(offset * SAMPLE_RATE)
        strain, witnesses = strain[begin:], witnesses[:, begin:]
        t0 = GPS_START + offset
        offline = engine.clean(strain, witnesses, t0)

        emitted = stream_chunks(engine, strain, witnesses, t0, chunk)
        assert emitted[0].t0 == offline.t0
        assert [frame.t0 for frame in emitted] == [
            frame.t0 for frame in offline.frames()
        ]
        streamed = torch.cat([frame.noise for frame in emitted])
        scale = float(offline.noise.abs().max())
        torch.testing.assert_close(
            streamed, offline.noise, rtol=0, atol=1e-6 * scale
        )

    @pytest.mark.parametrize("keep_offset", [None, 0.3125])
    def test_latency(self, keep_offset: float | None) -> None:
        strain, witnesses, _ = simulate(12.0)
        config = make_config(keep_offset=keep_offset)
        cleaner = CleaningEngine(ConvModel(2).eval(), config).stream()
        size = int(SAMPLE_RATE)
        for second in range(12):
            segment = cleaner.push(
                strain[second * size : (second + 1) * size],
                witnesses[:, second * size : (second + 1) * size],
                GPS_START + second,
            )
            if second >= 6:
                assert segment is not None and segment.num_frames == 1
                frame_end = segment.t0 + segment.duration
                chunk_end = GPS_START + second + 1
                assert chunk_end - frame_end == cleaner.latency

    def test_gap_is_refused_and_reset_recovers(self) -> None:
        strain, witnesses, _ = simulate(4.0)
        size = int(SAMPLE_RATE)
        cleaner = CleaningEngine(ConvModel(2), make_config()).stream()
        cleaner.push(strain[:size], witnesses[:, :size], GPS_START)
        with pytest.raises(ValueError, match="gap or overlap"):
            cleaner.push(
                strain[2 * size : 3 * size],
                witnesses[:, 2 * size : 3 * size],
                GPS_START + 2,
            )
        cleaner.reset()
        assert (
            cleaner.push(strain[:size], witnesses[:, :size], GPS_START) is None
        )


class TestRobustness:
    def test_nan_witnesses_pass_raw_strain_through(self) -> None:
        strain, witnesses, _ = simulate(24.0)
        engine = CleaningEngine(ConvModel(2).eval(), make_config())
        clean = engine.clean(strain, witnesses, GPS_START)
        broken = witnesses.clone()
        broken[1, int(12.2 * SAMPLE_RATE)] = float("nan")
        segment = engine.clean(strain, broken, GPS_START)
        flagged = segment.flagged.nonzero().flatten().tolist()
        assert flagged and all(
            abs(GPS_START + 12.2 - (segment.t0 + index)) < 3
            for index in flagged
        )
        assert bool(torch.isfinite(segment.cleaned).all())
        for index, frame in enumerate(segment.frames()):
            expected = (
                frame.raw
                if index in flagged
                else (clean.frames()[index].cleaned)
            )
            torch.testing.assert_close(frame.cleaned, expected)

    def test_nan_strain_is_flagged_with_zero_noise(self) -> None:
        strain, witnesses, _ = simulate(24.0)
        engine = CleaningEngine(ConvModel(2).eval(), make_config())
        clean = engine.clean(strain, witnesses, GPS_START)
        broken = strain.clone()
        broken[int(12.2 * SAMPLE_RATE)] = float("inf")
        segment = engine.clean(broken, witnesses, GPS_START)
        assert segment.flagged.nonzero().flatten().tolist() == [
            round(GPS_START + 12 - segment.t0)
        ]
        for frame, reference in zip(
            segment.frames(), clean.frames(), strict=True
        ):
            if bool(frame.flagged):
                assert bool((frame.noise == 0).all())
                torch.testing.assert_close(frame.cleaned, frame.raw)
            else:
                torch.testing.assert_close(frame.cleaned, reference.cleaned)
        streamed = engine.stream().push(broken, witnesses, GPS_START)
        torch.testing.assert_close(streamed.flagged, segment.flagged)

    def test_model_in_train_mode_runs_in_eval_and_is_restored(self) -> None:
        strain, witnesses, _ = simulate(12.0)
        model = ConvModel(2)
        model.layers[1].running_mean.fill_(3.0)
        engine = CleaningEngine(model, make_config())
        trained = engine.clean(strain, witnesses, GPS_START)
        assert model.training
        evaluated = engine.clean(strain, witnesses, GPS_START)
        model.eval()
        expected = engine.clean(strain, witnesses, GPS_START)
        torch.testing.assert_close(trained.cleaned, expected.cleaned)
        torch.testing.assert_close(evaluated.cleaned, expected.cleaned)
        assert float(model.layers[1].running_mean[0]) == 3.0

    def test_exported_model_cleans_like_the_eager_model(self) -> None:
        strain, witnesses, _ = simulate(12.0)
        model = ConvModel(2).eval()
        example = witnesses[None, :, : int(SAMPLE_RATE)].repeat(2, 1, 1)
        batch = torch.export.Dim("batch")
        exported = torch.export.export(
            model, (example,), dynamic_shapes=({0: batch},)
        ).module()
        config = make_config()
        eager = CleaningEngine(model, config).clean(
            strain, witnesses, GPS_START
        )
        deployed = CleaningEngine(exported, config).clean(
            strain, witnesses, GPS_START
        )
        torch.testing.assert_close(
            deployed.noise, eager.noise, rtol=1e-6, atol=1e-12 * STRAIN_SCALE
        )

    def test_wrong_model_output_shape(self) -> None:
        strain, witnesses, _ = simulate(8.0)
        engine = CleaningEngine(lambda w: w, make_config())
        with pytest.raises(ValueError, match=r"must return \(batch, 512\)"):
            engine.clean(strain, witnesses, GPS_START)

    def test_span_too_short(self) -> None:
        strain, witnesses, _ = simulate(3.0)
        engine = CleaningEngine(PerfectWitness(), make_config())
        with pytest.raises(ValueError, match="cannot yield one whole"):
            engine.clean(strain, witnesses, GPS_START)

    def test_mismatched_inputs(self) -> None:
        strain, witnesses, _ = simulate(8.0)
        engine = CleaningEngine(PerfectWitness(), make_config())
        with pytest.raises(ValueError, match="witnesses must have shape"):
            engine.clean(strain, witnesses[:, :-1], GPS_START)
        with pytest.raises(ValueError, match="whole number of samples"):
            engine.clean(strain, witnesses, GPS_START + 1e-4)


class ZeroModel(torch.nn.Module):
    """Predicts no noise at all."""

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(witnesses[:, 0])


class TestPrior:
    """Another method's noise estimate, band-passed with the prediction."""

    def prior(self, strain: torch.Tensor) -> torch.Tensor:
        """A made-up estimate: a share of the strain, delayed."""
        return 0.3 * torch.roll(strain, 7)

    @pytest.mark.parametrize("overrides", EDGE_HANDLING)
    def test_prior_is_band_passed_with_the_prediction(
        self, overrides: dict
    ) -> None:
        strain, witnesses, _ = simulate(20.0)
        config = make_config(**overrides)
        model = ConvModel(2).eval()
        prior = self.prior(strain)
        both = CleaningEngine(model, config).clean(
            strain, witnesses, GPS_START, prior
        )
        alone = CleaningEngine(model, config).clean(
            strain, witnesses, GPS_START
        )
        only_prior = CleaningEngine(ZeroModel(), config).clean(
            strain, witnesses, GPS_START, prior
        )
        assert float(only_prior.noise.abs().max()) > 0
        torch.testing.assert_close(both.noise, alone.noise + only_prior.noise)
        torch.testing.assert_close(both.cleaned, both.raw - both.noise)

    @pytest.mark.parametrize("overrides", EDGE_HANDLING)
    def test_streaming_with_a_prior_equals_offline(
        self, overrides: dict
    ) -> None:
        strain, witnesses, _ = simulate(20.0)
        engine = CleaningEngine(ConvModel(2).eval(), make_config(**overrides))
        prior = self.prior(strain)
        offline = engine.clean(strain, witnesses, GPS_START, prior)
        emitted = stream_chunks(
            engine, strain, witnesses, GPS_START, 1.0, prior
        )
        streamed = torch.cat([frame.noise for frame in emitted])
        scale = float(offline.noise.abs().max())
        torch.testing.assert_close(
            streamed, offline.noise, rtol=0, atol=1e-6 * scale
        )

    def test_bad_priors(self) -> None:
        strain, witnesses, _ = simulate(8.0)
        engine = CleaningEngine(ConvModel(2).eval(), make_config())
        with pytest.raises(ValueError, match="prior must have the strain"):
            engine.clean(strain, witnesses, GPS_START, strain[:-1])
        cleaner = engine.stream()
        size = int(SAMPLE_RATE)
        cleaner.push(strain[:size], witnesses[:, :size], GPS_START)
        with pytest.raises(ValueError, match="with every chunk"):
            cleaner.push(
                strain[size : 2 * size],
                witnesses[:, size : 2 * size],
                GPS_START + 1,
                strain[size : 2 * size],
            )
