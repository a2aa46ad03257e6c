"""The training data module: spans, scalers, window sampling, bad input."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from deepclean_engine.resampling import Decimator
from deepclean_io import write_timeseries
from deepclean_io.hdf5 import SUBTRACTED_ATTRIBUTE
from deepclean_train.data import DeepCleanDataModule


def make_data(
    toy, fname: Path | list[str], **overrides: object
) -> DeepCleanDataModule:
    arguments = {
        "fname": fname if isinstance(fname, list) else str(fname),
        "strain_channel": toy.strain_channel,
        "witnesses": toy.witnesses,
        "sample_rate": toy.sample_rate,
        "bands": toy.bands,
        "train_duration": 64.0,
        "valid_duration": 32.0,
        "test_duration": 16.0,
        "train_offset": 8.0,
        "batch_size": 6,
    }
    arguments.update(overrides)
    return DeepCleanDataModule(**arguments)


class TestSpans:
    def test_spans_follow_each_other(self, toy, data_file: Path) -> None:
        data = make_data(toy, data_file)
        data.setup("fit")
        expected = {"train": (8, 64), "valid": (72, 32), "test": (104, 16)}
        for name, (offset, duration) in expected.items():
            span = data.spans[name]
            assert span.t0 == toy.t0 + offset
            assert span.strain.shape == (duration * toy.sample_rate,)
            assert span.witnesses.shape == (4, duration * toy.sample_rate)
        assert data.train_span == (toy.t0 + 8, toy.t0 + 72)

    def test_spans_hold_the_file_data(self, toy, data_file: Path) -> None:
        data = make_data(toy, data_file)
        data.setup("fit")
        channels = toy.channels()
        first = round(72 * toy.sample_rate)
        np.testing.assert_array_equal(
            data.spans["valid"].strain[:10].numpy(),
            channels[toy.strain_channel][first : first + 10],
        )
        np.testing.assert_array_equal(
            data.spans["valid"].witnesses[2, :10].numpy(),
            channels[toy.witnesses[2]][first : first + 10],
        )


def _split(
    toy,
    tmp_path: Path,
    cuts: list[float],
    gap: float = 0.0,
    attrs: list[dict[str, str]] | None = None,
):
    """The toy data cut into files at ``cuts`` s (``gap`` s dropped after
    the first cut), each with its ``attrs``."""
    channels = toy.channels()
    edges = [0.0, *cuts, toy.duration]
    paths = []
    for index, (first, last) in enumerate(itertools.pairwise(edges)):
        if index == 1:
            first += gap
        lo, hi = (round(t * toy.sample_rate) for t in (first, last))
        paths.append(
            write_timeseries(
                tmp_path / f"part-{index}.hdf5",
                {name: values[lo:hi] for name, values in channels.items()},
                toy.t0 + first,
                toy.sample_rate,
                attrs=attrs[index] if attrs else None,
            )
        )
    return paths


class TestSeveralFiles:
    def test_spans_cross_file_boundaries(self, toy, tmp_path: Path) -> None:
        paths = _split(toy, tmp_path, [50.0, 90.0])
        data = make_data(toy, [str(p) for p in paths])
        data.setup("fit")
        single = make_data(
            toy,
            write_timeseries(
                tmp_path / "whole.hdf5",
                toy.channels(),
                toy.t0,
                toy.sample_rate,
            ),
        )
        single.setup("fit")
        for name in ("train", "valid", "test"):
            assert data.spans[name].t0 == single.spans[name].t0
            torch.testing.assert_close(
                data.spans[name].strain, single.spans[name].strain
            )
            torch.testing.assert_close(
                data.spans[name].witnesses, single.spans[name].witnesses
            )

    def test_files_with_a_gap_are_refused(self, toy, tmp_path: Path) -> None:
        paths = _split(toy, tmp_path, [50.0], gap=4.0)
        data = make_data(toy, [str(p) for p in paths])
        with pytest.raises(ValueError, match="files of 2 segments"):
            data.setup("fit")

    def test_raw_and_residual_files_are_not_mixed(
        self, toy, tmp_path: Path
    ) -> None:
        residual = {SUBTRACTED_ATTRIBUTE: "NOMAD"}
        paths = _split(toy, tmp_path, [50.0], attrs=[residual, residual])
        data = make_data(toy, [str(p) for p in paths])
        data.setup("fit")
        assert data.subtracted == "NOMAD"
        paths = _split(toy, tmp_path, [50.0], attrs=[{}, residual])
        data = make_data(toy, [str(p) for p in paths])
        with pytest.raises(ValueError, match="mix files of several kinds"):
            data.setup("fit")


def test_scalers_are_fitted_on_the_training_span(toy, data_file: Path) -> None:
    data = make_data(toy, data_file)
    data.setup("fit")
    train = data.spans["train"].witnesses.double()
    torch.testing.assert_close(
        data.witness_scaler.mean.double().flatten(), train.mean(dim=-1)
    )
    assert data.target.dtype == torch.float32
    assert data.target.std().item() == pytest.approx(1, rel=1e-3)
    assert 1e-22 < data.strain_scaler.scale.item() < 1e-20


class TestSampling:
    def test_windows_are_slices_of_the_training_span(
        self, toy, data_file: Path
    ) -> None:
        data = make_data(toy, data_file)
        data.setup("fit")
        witnesses, target = data.sample_batch(torch.device("cpu"))
        kernel = round(toy.sample_rate)
        assert witnesses.shape == (6, 4, kernel)
        assert witnesses.is_contiguous()
        assert target.shape == (6, kernel)
        train = data.spans["train"].witnesses
        settling = data.bandpass.settling_size
        for window, window_target in zip(witnesses, target, strict=True):
            (offsets,) = torch.nonzero(train[0] == window[0, 0], as_tuple=True)
            offset = int(offsets[0])
            torch.testing.assert_close(
                window, train[:, offset : offset + kernel]
            )
            torch.testing.assert_close(
                window_target, data.target[offset : offset + kernel]
            )
            assert settling <= offset <= train.shape[-1] - settling - kernel

    def test_offsets_cover_the_span(self, toy, data_file: Path) -> None:
        data = make_data(toy, data_file, batch_size=4096)
        data.setup("fit")
        witnesses, _ = data.sample_batch(torch.device("cpu"))
        train = data.spans["train"].witnesses[0]
        starts = torch.isin(train, witnesses[:, 0, 0]).nonzero().flatten()
        assert starts.max() - starts.min() > 0.9 * train.shape[-1] - 512
        # 4096 draws among ~31,000 offsets: ~3,840 distinct on average
        assert len(starts.unique()) > 3500

    def test_dataloaders(self, toy, data_file: Path) -> None:
        data = make_data(toy, data_file, batches_per_epoch=3)
        data.setup("fit")
        assert list(data.train_dataloader()) == [0, 1, 2]
        assert list(data.val_dataloader()) == ["valid"]
        assert list(data.test_dataloader()) == ["test"]


class TestNetworkRate:
    def test_windows_are_slices_of_the_decimated_span(
        self, toy, data_file: Path
    ) -> None:
        data = make_data(toy, data_file, network_sample_rate=256.0)
        data.setup("fit")
        train = data.spans["train"]
        decimator = Decimator(2)
        torch.testing.assert_close(
            data.train_witnesses,
            torch.stack([decimator(row) for row in train.witnesses]),
        )
        target = data.strain_scaler(data.bandpass(train.strain)).float()
        torch.testing.assert_close(data.target, decimator(target))
        witnesses, targets = data.sample_batch(torch.device("cpu"))
        assert witnesses.shape == (6, 4, 256)
        assert targets.shape == (6, 256)
        decimated = data.train_witnesses
        for window, window_target in zip(witnesses, targets, strict=True):
            (offsets,) = torch.nonzero(
                decimated[0] == window[0, 0], as_tuple=True
            )
            offset = int(offsets[0])
            torch.testing.assert_close(
                window, decimated[:, offset : offset + 256]
            )
            torch.testing.assert_close(
                window_target, data.target[offset : offset + 256]
            )

    def test_kernel_that_does_not_decimate_evenly_is_refused(
        self, toy, data_file: Path
    ) -> None:
        with pytest.raises(ValueError, match="not a multiple of the"):
            make_data(toy, data_file, network_sample_rate=512.0 / 3)

    def test_rate_that_does_not_divide_is_refused(
        self, toy, data_file: Path
    ) -> None:
        with pytest.raises(ValueError, match="divided by an integer"):
            make_data(toy, data_file, network_sample_rate=200.0)


class TestBadInput:
    def test_missing_channels_are_named(self, toy, data_file: Path) -> None:
        witnesses = [*toy.witnesses, "H1:NOT_THERE"]
        data = make_data(toy, data_file, witnesses=witnesses)
        with pytest.raises(ValueError, match=r"\['H1:NOT_THERE'\] are not"):
            data.setup("fit")

    def test_file_too_short(self, toy, data_file: Path) -> None:
        data = make_data(toy, data_file, train_duration=160.0)
        with pytest.raises(ValueError, match="holds 192 s but .* 216 s"):
            data.setup("fit")

    def test_sample_rate_mismatch(self, toy, data_file: Path) -> None:
        data = make_data(toy, data_file, sample_rate=1024.0)
        with pytest.raises(ValueError, match="sampled at 512 Hz but"):
            data.setup("fit")

    def test_nan_in_training_span(self, toy, tmp_path: Path) -> None:
        channels = toy.channels(duration=128.0)
        channels[toy.witnesses[1]][round(20.5 * toy.sample_rate)] = np.nan
        fname = write_timeseries(
            tmp_path / "nan.hdf5", channels, toy.t0, toy.sample_rate
        )
        data = make_data(toy, fname, test_duration=0.0)
        with pytest.raises(
            ValueError,
            match=rf"{toy.witnesses[1]!r} has 1 NaN/inf samples in the "
            rf"train span .* at GPS {toy.t0 + 20.5}",
        ):
            data.setup("fit")

    def test_duplicate_witnesses(self, toy, data_file: Path) -> None:
        witnesses = [*toy.witnesses, toy.witnesses[0]]
        with pytest.raises(ValueError, match="more than once"):
            make_data(toy, data_file, witnesses=witnesses)

    def test_missing_file(self, toy, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            make_data(toy, tmp_path / "none.hdf5").setup("fit")
