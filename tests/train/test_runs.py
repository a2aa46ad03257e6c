"""Pieces that make training runs safe to stop, kill and resume."""

import csv
import logging
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from deepclean_engine import save_exported_model
from deepclean_train import runs
from deepclean_train.runs import (
    SETTINGS_KEY,
    AtomicCheckpointIO,
    ResumableCSVLogger,
    result_settings,
    resumable_step,
)

SETTINGS = {
    "data.train_offset": 0.0,
    "data.witnesses": ["H1:PEM-A", "H1:PEM-B"],
    "trainer.max_epochs": 4,
}


class JobKilled(BaseException):
    """Stands in for SIGTERM or a node loss in the middle of a write."""


def test_killed_checkpoint_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, path)

    def killed_half_way(checkpoint: dict, fname: Path) -> None:
        Path(fname).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise JobKilled

    monkeypatch.setattr(runs.torch, "save", killed_half_way)
    with pytest.raises(JobKilled):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["epoch", "step", "val"])
        writer.writeheader()
        writer.writerows(rows)


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


class TestResumableCSVLogger:
    EARLIER = [
        {"epoch": 0, "step": 3, "val": 0.9},
        {"epoch": 1, "step": 7, "val": 0.8},
        {"epoch": 2, "step": 9, "val": 0.7},  # after the checkpoint
    ]

    def test_resumed_run_keeps_the_restored_rows(self, tmp_path: Path) -> None:
        write_metrics(tmp_path / "metrics.csv", self.EARLIER)
        logger = ResumableCSVLogger(tmp_path, resume_step=8)
        logger.log_metrics({"epoch": 2, "val": 0.6, "lr": 1e-3}, step=11)
        logger.save()
        rows = read_metrics(tmp_path / "metrics.csv")
        assert [row["step"] for row in rows] == ["3", "7", "11"]
        assert rows[0]["val"] == "0.9" and rows[0]["lr"] == ""
        assert rows[-1]["lr"] == "0.001"

    def test_new_run_starts_a_new_file(self, tmp_path: Path) -> None:
        write_metrics(tmp_path / "metrics.csv", self.EARLIER)
        logger = ResumableCSVLogger(tmp_path)
        logger.log_metrics({"val": 0.5}, step=0)
        logger.save()
        rows = read_metrics(tmp_path / "metrics.csv")
        assert [(row["step"], row["val"]) for row in rows] == [("0", "0.5")]


def test_result_settings_keep_what_changes_the_result() -> None:
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 4, "default_root_dir": "out"},
        "model": {
            "arch": {"init_args": {"kernel_size": 7}},
            "valid_batch_size": 64,
        },
        "data": {"train_offset": 8.0},
        "wandb": {"enabled": False},
    }
    assert result_settings(config) == {
        "trainer.max_epochs": 4,
        "model.arch.init_args.kernel_size": 7,
        "data.train_offset": 8.0,
    }


class TestResumableStep:
    def checkpoint(self, tmp_path: Path, **changes: object) -> Path:
        path = tmp_path / "last.ckpt"
        settings = {**SETTINGS, **changes}
        torch.save({"global_step": 8, SETTINGS_KEY: settings}, path)
        return path

    def test_same_settings_resume(self, tmp_path: Path) -> None:
        assert resumable_step(self.checkpoint(tmp_path), SETTINGS) == 8

    def test_other_settings_are_refused(self, tmp_path: Path) -> None:
        path = self.checkpoint(
            tmp_path, **{"data.train_offset": 64.0, "model.extra": 1}
        )
        with pytest.raises(ValueError) as error:
            resumable_step(path, SETTINGS)
        message = str(error.value)
        assert f"cannot resume from {path}" in message
        assert "data.train_offset: 64.0 in the checkpoint, 0.0 now" in message
        assert "model.extra: 1 in the checkpoint, absent now" in message
        assert "data.witnesses" not in message
        assert "another --trainer.default_root_dir" in message

    def test_checkpoint_without_settings_is_refused(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "old.ckpt"
        torch.save({"global_step": 8, "state_dict": {}}, path)
        with pytest.raises(ValueError, match="records no settings"):
            resumable_step(path, SETTINGS)

    @pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
    def test_truncated_checkpoint_trains_from_scratch(
        self,
        content: bytes,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        path = tmp_path / "last.ckpt"
        path.write_bytes(content)
        with caplog.at_level(logging.WARNING, "deepclean_train"):
            assert resumable_step(path, SETTINGS) is None
        assert f"checkpoint {path} is truncated" in caplog.text
        assert path.read_bytes() == content

    def test_exported_model_is_not_a_checkpoint(self, tmp_path: Path) -> None:
        path = save_exported_model(
            torch.nn.Identity(), {}, tmp_path / "model.pt"
        )
        with pytest.raises(
            ValueError, match="model.pt is not a Lightning training checkpoint"
        ):
            resumable_step(path, SETTINGS)

    def test_missing_checkpoint(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="leave out --ckpt_path"):
            resumable_step(tmp_path / "last.ckpt", SETTINGS)


class ConstantValidation(BoringModel):
    """Logs the same ``val_asdr`` every epoch: no epoch improves on the
    first."""

    def validation_step(self, batch, batch_idx):
        self.log("val_asdr", 1.0)


class RecordLastEpoch(pl.Callback):
    """The epoch stored in ``last.ckpt`` when each epoch starts."""

    def __init__(self, path: Path):
        self.path = path
        self.epochs: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module):
        if self.path.exists():
            self.epochs.append(torch.load(self.path)["epoch"])


def test_last_checkpoint_follows_every_epoch(tmp_path: Path) -> None:
    checkpoint = runs.EveryEpochCheckpoint(
        dirpath=tmp_path, monitor="val_asdr", save_last=True
    )
    record = RecordLastEpoch(tmp_path / "last.ckpt")
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=[checkpoint, record],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(ConstantValidation())
    assert record.epochs == [0, 1]
    assert torch.load(tmp_path / "last.ckpt")["epoch"] == 2
