"""The exported model file: atomic writing and clear errors on bad files."""

import json
from pathlib import Path

import h5py
import pytest
import torch

from deepclean_engine import (
    MODEL_NAME,
    load_exported_model,
    save_exported_model,
)

METADATA = {"witnesses": ["H1:PEM-A", "H1:PEM-B"], "sample_rate": 512.0}


class SumWitnesses(torch.nn.Module):
    """``(batch, channels, kernel)`` -> ``(batch, kernel)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1)


class JobKilled(BaseException):
    """Stands in for SIGTERM or a node loss in the middle of a write."""


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    return save_exported_model(SumWitnesses(), METADATA, tmp_path / MODEL_NAME)


def test_round_trip(exported: Path) -> None:
    module, metadata = load_exported_model(exported)
    assert metadata == METADATA
    assert json.loads(exported.with_suffix(".json").read_text()) == METADATA
    x = torch.randn(3, 2, 8)
    torch.testing.assert_close(module(x), x.sum(dim=1))


def test_kill_during_export_leaves_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model.json is written first, model.pt last and never in part."""
    path = tmp_path / MODEL_NAME

    def killed_half_way(module, fname, _extra_files) -> None:
        assert path.with_suffix(".json").is_file()
        Path(fname).write_bytes(b"PK\x03\x04 half a model")
        raise JobKilled

    monkeypatch.setattr(torch.jit, "save", killed_half_way)
    with pytest.raises(JobKilled):
        save_exported_model(SumWitnesses(), METADATA, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


class TestBadFiles:
    def test_text_file(self, tmp_path: Path) -> None:
        path = tmp_path / "model.pt"
        path.write_text("not a model\n")
        with pytest.raises(ValueError, match="not a TorchScript model"):
            load_exported_model(path)

    def test_hdf5_file(self, tmp_path: Path) -> None:
        path = tmp_path / "data.hdf5"
        with h5py.File(path, "w") as f:
            f["strain"] = [1.0, 2.0]
        with pytest.raises(ValueError, match=f"{path} is truncated or not"):
            load_exported_model(path)

    def test_truncated_model(self, exported: Path) -> None:
        data = exported.read_bytes()
        exported.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match="re-export it or re-train"):
            load_exported_model(exported)

    def test_training_checkpoint(self, tmp_path: Path) -> None:
        path = tmp_path / "last.ckpt"
        torch.save({"state_dict": SumWitnesses().state_dict()}, path)
        with pytest.raises(
            ValueError,
            match="last.ckpt is a training checkpoint .* pass the model.pt",
        ):
            load_exported_model(path)
