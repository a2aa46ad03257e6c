"""The classical stage of the hybrid: NOMAD's residual files."""

import json

import numpy as np
import pytest
import torch
from nomad.model.format import read_model

from deepclean_clean.assess import assess, read_cleaned
from deepclean_clean.classical import subtract_classical
from deepclean_clean.clean import clean, window_config
from deepclean_clean.nomad import (
    NomadEstimates,
    NomadSettings,
    NomadStream,
    apply_nomad,
)
from deepclean_clean.retrain import gate
from deepclean_engine import (
    CleaningConfig,
    CleaningEngine,
    load_exported_model,
    save_exported_model,
)
from deepclean_engine.exported import CLASSICAL_NAME
from deepclean_io.hdf5 import (
    SUBTRACTED_ATTRIBUTE,
    SUBTRACTED_MODEL_ATTRIBUTE,
    contiguous_files,
    file_info,
    read_timeseries,
    write_timeseries,
)

RATE = 512.0
T0 = 1262304000
STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = [
    "H1:ASC-CHARD_P_INMON",
    "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
    "H1:ASC-DHARD_P_INMON",
    "H1:ASC-MICH_Y_INMON",
]
MAINS = WITNESSES[1]
BANDS = [(55.0, 65.0)]
SETTINGS = NomadSettings(fftlength=4.0, max_iterations=3000, stride=16.0)
# the data are cut into two back-to-back files at this many seconds
CUT = 256


def _files(bilinear, folder):
    """The bilinear data as two back-to-back files (strain float64,
    witnesses float32)."""
    folder.mkdir(parents=True, exist_ok=True)
    cut = round(CUT * RATE)
    paths = []
    for lo, hi in ((0, cut), (cut, bilinear["strain"].size)):
        data = {STRAIN: bilinear["strain"][lo:hi]}
        for row, name in enumerate(WITNESSES):
            data[name] = bilinear["witnesses"][row, lo:hi].astype(np.float32)
        duration = round((hi - lo) / RATE)
        paths.append(
            write_timeseries(
                folder / f"deepclean-{T0 + round(lo / RATE)}-{duration}.hdf5",
                data,
                T0 + lo / RATE,
                RATE,
                units={STRAIN: "strain"},
            )
        )
    return paths


def _run(files, output_dir, **overrides):
    options = {
        "data_files": files,
        "output_dir": output_dir,
        "strain_channel": STRAIN,
        "witnesses": WITNESSES,
        "mains_channel": MAINS,
        "bands": BANDS,
        "train_start": T0,
        "train_end": T0 + CUT,
        "nomad": SETTINGS,
        "progress": False,
    }
    options.update(overrides)
    return subtract_classical(**options)


@pytest.fixture(scope="module")
def first_run(bilinear, tmp_path_factory):
    folder = tmp_path_factory.mktemp("classical")
    files = _files(bilinear, folder / "raw")
    summary = _run(files, folder / "residual")
    return files, folder / "residual", summary


def _strain(path) -> np.ndarray:
    return read_timeseries(path, [STRAIN])[0][STRAIN]


def test_residual_files_are_one_stream_across_the_cut(bilinear, first_run):
    files, output_dir, summary = first_run
    residuals = [output_dir / path.name for path in files]
    assert summary.files == [str(path) for path in residuals]
    assert summary.reused_files == []
    for raw, residual in zip(files, residuals, strict=True):
        info = file_info(residual)
        assert info.attrs[SUBTRACTED_ATTRIBUTE] == "NOMAD"
        assert info.attrs[SUBTRACTED_MODEL_ATTRIBUTE] == "nomad.h5"
        assert (info.t0, info.duration) == (
            file_info(raw).t0,
            file_info(raw).duration,
        )
        assert info.units[STRAIN] == "strain"
        raw_data = read_timeseries(raw, WITNESSES)[0]
        residual_data = read_timeseries(residual, WITNESSES)[0]
        for name in WITNESSES:
            assert residual_data[name].dtype == np.float32
            np.testing.assert_array_equal(residual_data[name], raw_data[name])
    # the same as NOMAD cleaning the joined span in one go: filter state
    # and band-pass padding carry across the cut
    joined = apply_nomad(
        read_model(str(output_dir / "nomad.h5")),
        bilinear["witnesses"].astype(np.float32).astype(np.float64),
        bilinear["strain"],
        RATE,
        BANDS,
        SETTINGS.stride,
    )
    stitched = np.concatenate([_strain(path) for path in residuals])
    removed = bilinear["strain"] - joined
    error = np.abs(stitched - joined)
    assert error.max() < 1e-2 * removed.std()
    # in-band noise halves at least; nothing changes out of band
    for ratios in summary.asd_ratios.values():
        assert ratios["in_band"] < 0.5
        assert abs(ratios["out_of_band"] - 1) < 1e-3
    saved = json.loads((output_dir / "classical.json").read_text())
    assert saved["asd_ratios"] == summary.asd_ratios


def test_rerun_keeps_files_and_a_lost_file_is_made_again(first_run):
    files, output_dir, _ = first_run
    residuals = [output_dir / path.name for path in files]
    before = [_strain(path) for path in residuals]
    again = _run(files, output_dir)
    assert again.files == []
    assert again.reused_files == [str(path) for path in residuals]
    residuals[1].unlink()
    resumed = _run(files, output_dir)
    # the segment is streamed again from its start: both files rewritten
    assert resumed.files == [str(path) for path in residuals]
    for path, strain in zip(residuals, before, strict=True):
        np.testing.assert_array_equal(_strain(path), strain)


def test_other_settings_make_new_residuals(first_run, tmp_path):
    files, output_dir, _ = first_run
    copy = tmp_path / "residual"
    copy.mkdir()
    for path in output_dir.glob("*.hdf5"):
        (copy / path.name).write_bytes(path.read_bytes())
    shorter = _run(files, copy, train_end=T0 + 128)
    assert shorter.reused_files == []
    assert len(shorter.files) == 2
    assert not np.array_equal(
        _strain(copy / files[0].name), _strain(output_dir / files[0].name)
    )


class TestRefuses:
    def test_residual_files_as_input(self, first_run, tmp_path):
        files, output_dir, _ = first_run
        with pytest.raises(ValueError, match="pass the fetched files"):
            _run([output_dir / files[0].name], tmp_path)

    def test_a_mains_channel_that_is_not_a_witness(self, first_run, tmp_path):
        with pytest.raises(ValueError, match="H1:OTHER"):
            _run(first_run[0], tmp_path, mains_channel="H1:OTHER")

    def test_a_missing_channel(self, first_run, tmp_path):
        with pytest.raises(
            ValueError,
            match=r"lacks the classical stage.s channels \['H1:X'\]",
        ):
            _run(first_run[0], tmp_path, witnesses=[*WITNESSES, "H1:X"])

    def test_a_training_span_outside_one_segment(self, first_run, tmp_path):
        with pytest.raises(ValueError, match="inside one segment"):
            _run(first_run[0], tmp_path, train_end=T0 + 1000)

    def test_evaluating_against_a_residual(self, first_run, tmp_path):
        files, output_dir, _ = first_run
        residual = output_dir / files[1].name
        with pytest.raises(ValueError, match="measures every method"):
            assess(
                model=tmp_path / "model.pt",
                data_file=residual,
                cleaned_dir=tmp_path,
                output_dir=tmp_path,
                start=T0 + CUT,
                end=T0 + CUT + 64,
                train_file=files[0],
                mains_channel=MAINS,
            )


def test_command_line(first_run, tmp_path, capsys):
    from deepclean_clean.cli import main

    files, _, _ = first_run
    main(
        [
            "classical",
            f"--data_files=[{','.join(str(path) for path in files)}]",
            f"--output_dir={tmp_path}",
            f"--strain_channel={STRAIN}",
            f"--witnesses=[{','.join(WITNESSES)}]",
            f"--mains_channel={MAINS}",
            "--bands=[[55,65]]",
            f"--train_start={T0}",
            f"--train_end={T0 + CUT}",
            "--nomad.fftlength=4",
            "--nomad.max_iterations=3000",
            "--progress=false",
        ]
    )
    assert "NOMAD residuals: 2 written, 0 kept" in capsys.readouterr().out
    assert (tmp_path / "classical.json").exists()
    assert (tmp_path / "nomad.h5").exists()


class LinearNoise(torch.nn.Module):
    """A fixed linear filter of the witnesses (DeepClean's part)."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.conv = torch.nn.Conv1d(num_channels, 1, 9, padding=4)
        with torch.no_grad():
            self.conv.weight.copy_(
                0.01 * torch.randn(self.conv.weight.shape, generator=generator)
            )

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return self.conv(witnesses)[:, 0]


def _hybrid_model(path, classical: bytes | None, subtracted="NOMAD"):
    """The linear network exported after a classical stage (carrying
    ``classical``), or, with ``subtracted=None``, trained on raw strain."""
    config = CleaningConfig(
        sample_rate=RATE,
        bands=BANDS,
        kernel_length=2.0,
        inference_sampling_rate=1.0,
    )
    metadata = {
        "strain_channel": STRAIN,
        "witnesses": WITNESSES,
        "sample_rate": RATE,
        "cleaning": config.to_dict(),
        "receptive_field": 9,
    }
    if subtracted is not None:
        metadata["subtracted"] = subtracted
    extra = {} if classical is None else {CLASSICAL_NAME: classical}
    return save_exported_model(
        LinearNoise(len(WITNESSES)), metadata, path, extra
    )


class TestHybridModel:
    """A model trained on residuals carries NOMAD and cleans raw strain."""

    def test_cleans_raw_files_with_nomad_as_the_engines_prior(
        self, first_run, tmp_path
    ):
        files, output_dir, _ = first_run
        model = _hybrid_model(
            tmp_path / "model.pt", (output_dir / "nomad.h5").read_bytes()
        )
        start, end = T0 + 100, T0 + 356
        summary = clean(
            model,
            files,
            tmp_path / "cleaned",
            start=start,
            end=end,
            file_length=256,
            chunk_length=64,
            progress=False,
        )
        assert summary.seconds_cleaned == 256
        # the reference: one engine call over the whole span, NOMAD
        # streamed from the first sample the cleaner read
        module, metadata = load_exported_model(model)
        engine = CleaningEngine(
            module, window_config(metadata, None, None, None)
        )
        data_start, data_end = engine.required_span(start, start + 64)
        data, t0, _ = contiguous_files(files)[0].read(
            [STRAIN, *WITNESSES], data_start, end + 16
        )
        rows = np.stack([data[w] for w in WITNESSES]).astype(np.float32)
        nomad = read_model(str(output_dir / "nomad.h5"))
        prior = NomadStream(nomad, len(WITNESSES), RATE, BANDS).estimate(
            data[STRAIN], rows
        )
        reference = engine.clean(
            torch.from_numpy(data[STRAIN]),
            torch.from_numpy(rows),
            t0,
            torch.from_numpy(prior),
        )
        lo = round((start - reference.t0) * RATE)
        expected = reference.cleaned[lo : lo + round(256 * RATE)].numpy()
        cleaned = read_cleaned(
            tmp_path / "cleaned", f"{STRAIN}_DC", start, end
        )
        np.testing.assert_allclose(cleaned, expected, rtol=0, atol=1e-9)
        # NOMAD's part is there: the in-band noise is below the
        # residual files' (NOMAD alone) and far below the raw strain's
        raw = read_timeseries(files[0], [STRAIN], start, T0 + CUT)[0][STRAIN]
        assert np.std(cleaned[: raw.size]) < 0.9 * np.std(raw)

    def test_residual_files_are_refused(self, first_run, tmp_path):
        files, output_dir, _ = first_run
        model = _hybrid_model(
            tmp_path / "model.pt", (output_dir / "nomad.h5").read_bytes()
        )
        with pytest.raises(ValueError, match="expects raw strain"):
            clean(model, [output_dir / files[0].name], tmp_path / "out")

    @pytest.mark.parametrize(
        ("classical", "message"),
        [
            (None, "carries no model of that"),
            (b"not HDF5", "carries an unreadable NOMAD model"),
        ],
    )
    def test_a_model_without_a_usable_classical_stage_is_refused(
        self, tmp_path, classical, message
    ):
        model = _hybrid_model(tmp_path / "model.pt", classical)
        with pytest.raises(ValueError, match=message):
            clean(model, [tmp_path / "any.hdf5"], tmp_path / "out")


def test_estimates_of_overlapping_pieces_and_bad_samples(bilinear, first_run):
    """Pieces that overlap reuse what was streamed; a bad sample gets NaN
    and NOMAD restarts after it, as a fresh stream would."""
    nomad = read_model(str(first_run[1] / "nomad.h5"))
    strain = bilinear["strain"][: round(64 * RATE)].copy()
    witnesses = bilinear["witnesses"][:, : strain.size].copy()
    whole = NomadStream(nomad, 4, RATE, BANDS).estimate(strain, witnesses)
    estimates = NomadEstimates(nomad, 4, RATE, BANDS)
    second = round(RATE)
    first = estimates.over(
        strain[: 20 * second], witnesses[:, : 20 * second], 0
    )
    overlapping = estimates.over(
        strain[10 * second : 40 * second],
        witnesses[:, 10 * second : 40 * second],
        10 * second,
    )
    np.testing.assert_array_equal(first, whole[: 20 * second])
    np.testing.assert_array_equal(
        overlapping, whole[10 * second : 40 * second]
    )
    with pytest.raises(ValueError, match="does not continue"):
        estimates.over(strain[:second], witnesses[:, :second], 0)
    bad = 45 * second
    witnesses[2, bad] = np.nan
    rest = estimates.over(
        strain[40 * second :], witnesses[:, 40 * second :], 40 * second
    )
    np.testing.assert_array_equal(rest[: 5 * second], whole[40 * second : bad])
    assert np.isnan(rest[5 * second])
    restarted = NomadStream(nomad, 4, RATE, BANDS).estimate(
        strain[bad + 1 :], witnesses[:, bad + 1 :]
    )
    np.testing.assert_array_equal(rest[5 * second + 1 :], restarted)


def test_the_gate_runs_a_hybrid_models_classical_stage(first_run, tmp_path):
    """A hybrid model is gated on raw strain with the NOMAD it carries,
    beside a model trained on raw strain; residual files are refused."""
    files, output_dir, _ = first_run
    nomad = (output_dir / "nomad.h5").read_bytes()
    hybrid = _hybrid_model(tmp_path / "hybrid.pt", nomad)
    plain = _hybrid_model(tmp_path / "plain.pt", None, subtracted=None)
    decision = gate(
        hybrid, files, T0 + 300, T0 + 364, tmp_path / "gate", live=plain
    )
    # the same network, with NOMAD's estimate subtracted too
    assert decision.promoted
    assert decision.live["in_band"] > 0.95
    assert decision.candidate["in_band"] < 0.5
    assert abs(decision.candidate["out_of_band"] - 1) < 0.005
    reverse = gate(
        plain, files, T0 + 300, T0 + 364, tmp_path / "reverse", live=hybrid
    )
    assert not reverse.promoted
    assert reverse.live == decision.candidate
    with pytest.raises(ValueError, match="expects raw strain"):
        gate(
            hybrid,
            [output_dir / path.name for path in files],
            T0 + 300,
            T0 + 364,
            tmp_path / "residuals",
        )
