"""``deepclean-train publish``: atomic, versioned publication of models
into the folder an online cleaner reads, and its reader."""

import hashlib
import json
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch

from deepclean_engine import MODEL_NAME, save_exported_model
from deepclean_engine.exported import MODEL_JSON_NAME, published_model
from deepclean_train import publish as publish_module
from deepclean_train.cli import main
from deepclean_train.publish import publish

WITNESSES = ["H1:PEM-A", "H1:PEM-B"]


class WeightedSum(torch.nn.Module):
    """``(batch, channels, kernel)`` -> ``(batch, kernel)``."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x.sum(dim=1)


class JobKilled(BaseException):
    """Stands in for SIGTERM or a node loss in the middle of a copy."""


def export(folder: Path, weight: float) -> Path:
    """An exported model in ``folder`` whose metadata names ``weight``."""
    metadata = {"witnesses": WITNESSES, "sample_rate": 512.0, "w": weight}
    return save_exported_model(
        WeightedSum(weight), metadata, folder / MODEL_NAME
    )


@pytest.fixture
def first(tmp_path: Path) -> Path:
    return export(tmp_path / "run1", 1.0)


@pytest.fixture
def second(tmp_path: Path) -> Path:
    return export(tmp_path / "run2", 2.0)


def folder_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_publish_twice_bumps_the_version(
    tmp_path: Path, first: Path, second: Path
) -> None:
    model_dir = tmp_path / "models" / "H1"
    before = datetime.now().astimezone() - timedelta(seconds=1)
    one = publish(first, model_dir)
    assert one["version"] == 1
    assert one["w"] == 1.0 and one["witnesses"] == WITNESSES
    assert one["source"] == str(first.resolve())
    assert datetime.fromisoformat(one["published"]) >= before
    assert datetime.fromisoformat(one["published"]).utcoffset() == (
        timedelta(0)
    )
    assert published_model(model_dir) == (model_dir / MODEL_NAME, one)

    two = publish(second, model_dir)
    assert two["version"] == 2 and two["w"] == 2.0
    assert folder_names(model_dir) == [MODEL_JSON_NAME, MODEL_NAME]
    published = model_dir / MODEL_NAME
    assert published.read_bytes() == second.read_bytes()
    assert two["sha256"] == hashlib.sha256(second.read_bytes()).hexdigest()
    assert json.loads((model_dir / MODEL_JSON_NAME).read_text()) == two
    assert published_model(model_dir) == (published, two)


def test_republishing_the_same_model_bumps_the_version(
    tmp_path: Path, first: Path
) -> None:
    model_dir = tmp_path / "models"
    assert publish(first, model_dir)["version"] == 1
    again = publish(model_dir / MODEL_NAME, model_dir)
    assert again["version"] == 2
    assert (model_dir / MODEL_NAME).read_bytes() == first.read_bytes()


class TestPublishedModel:
    def test_nothing_published(self, tmp_path: Path) -> None:
        assert published_model(tmp_path) is None
        assert published_model(tmp_path / "missing") is None

    def test_publication_in_progress(
        self, tmp_path: Path, first: Path, second: Path
    ) -> None:
        """The new model.pt is in place, its model.json not yet."""
        model_dir = tmp_path / "models"
        publish(first, model_dir)
        shutil.copyfile(second, model_dir / MODEL_NAME)
        assert published_model(model_dir) is None

    def test_record_of_another_model(
        self, tmp_path: Path, first: Path, second: Path
    ) -> None:
        """An interrupted publication: model.json names another model."""
        model_dir, other_dir = tmp_path / "models", tmp_path / "other"
        publish(first, model_dir)
        publish(second, other_dir)
        shutil.copyfile(
            other_dir / MODEL_JSON_NAME, model_dir / MODEL_JSON_NAME
        )
        assert published_model(model_dir) is None
        (model_dir / MODEL_NAME).unlink()
        assert published_model(model_dir) is None

    def test_unreadable_record(self, tmp_path: Path) -> None:
        (tmp_path / MODEL_JSON_NAME).write_text('{"version": 1,')
        with pytest.raises(ValueError, match="model.json cannot be read"):
            published_model(tmp_path)

    def test_training_output_is_not_a_model_folder(
        self, tmp_path: Path, first: Path, second: Path
    ) -> None:
        """model.json of an export has no version: refused, not
        overwritten."""
        match = r"no version, published, sha256, source\); publish models"
        with pytest.raises(ValueError, match=match):
            published_model(first.parent)
        with pytest.raises(ValueError, match=match):
            publish(second, first.parent)
        assert first.read_bytes() != second.read_bytes()
        assert json.loads(first.with_suffix(".json").read_text())["w"] == 1


class TestRefused:
    def test_not_a_model(self, tmp_path: Path) -> None:
        text = tmp_path / "notes.txt"
        text.write_text("not a model\n")
        model_dir = tmp_path / "models"
        with pytest.raises(ValueError, match="notes.txt is truncated or"):
            publish(text, model_dir)
        assert not model_dir.exists()

    def test_training_checkpoint(self, tmp_path: Path) -> None:
        checkpoint = tmp_path / "best.ckpt"
        torch.save({"state_dict": WeightedSum(1.0).state_dict()}, checkpoint)
        model_dir = tmp_path / "models"
        model_dir.mkdir()
        with pytest.raises(ValueError, match="is a training checkpoint"):
            publish(checkpoint, model_dir)
        assert folder_names(model_dir) == []

    def test_missing_model(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            publish(tmp_path / MODEL_NAME, tmp_path / "models")

    def test_unwritable_model_dir(self, tmp_path: Path, first: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(
            PermissionError, match="pass a writable --model_dir"
        ):
            publish(first, blocker / "models")


class TestInterrupted:
    def test_kill_during_copy_keeps_the_previous_publication(
        self,
        tmp_path: Path,
        first: Path,
        second: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        model_dir = tmp_path / "models"
        record = publish(first, model_dir)

        def killed_half_way(source: Path, destination: Path) -> None:
            data = Path(source).read_bytes()
            Path(destination).write_bytes(data[: len(data) // 2])
            raise JobKilled

        monkeypatch.setattr(publish_module.shutil, "copyfile", killed_half_way)
        with pytest.raises(JobKilled):
            publish(second, model_dir)
        assert folder_names(model_dir) == [MODEL_JSON_NAME, MODEL_NAME]
        assert (model_dir / MODEL_NAME).read_bytes() == first.read_bytes()
        assert published_model(model_dir) == (model_dir / MODEL_NAME, record)

    def test_kill_before_the_record_is_not_a_publication(
        self,
        tmp_path: Path,
        first: Path,
        second: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """model.pt is renamed first: readers wait for its model.json, and
        publishing again repairs the folder."""
        model_dir = tmp_path / "models"
        publish(first, model_dir)

        def killed(fname: Path, content: object) -> None:
            raise JobKilled

        with monkeypatch.context() as patch:
            patch.setattr(publish_module, "write_json_atomic", killed)
            with pytest.raises(JobKilled):
                publish(second, model_dir)
        assert (model_dir / MODEL_NAME).read_bytes() == second.read_bytes()
        assert published_model(model_dir) is None
        assert publish(second, model_dir)["version"] == 2
        assert published_model(model_dir)[1]["w"] == 2.0

    def test_model_replaced_during_copy_is_refused(
        self,
        tmp_path: Path,
        first: Path,
        second: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A new export replaced the source after it was validated."""
        model_dir = tmp_path / "models"
        copyfile = shutil.copyfile

        def replaced(source: Path, destination: Path) -> None:
            copyfile(second, destination)

        monkeypatch.setattr(publish_module.shutil, "copyfile", replaced)
        with pytest.raises(ValueError, match="changed while it was copied"):
            publish(first, model_dir)
        assert folder_names(model_dir) == []


class TestCommandLine:
    def test_publish(
        self, tmp_path: Path, first: Path, capsys: pytest.CaptureFixture
    ) -> None:
        model_dir = tmp_path / "models"
        main(["publish", str(first), "--model_dir", str(model_dir)])
        assert "as version 1 in" in capsys.readouterr().out
        path, record = published_model(model_dir)
        assert record["version"] == 1
        assert path.read_bytes() == first.read_bytes()

    def test_bad_file_exits_with_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture
    ) -> None:
        text = tmp_path / "notes.txt"
        text.write_text("not a model\n")
        model_dir = tmp_path / "models"
        with pytest.raises(SystemExit) as stop:
            main(["publish", str(text), "--model_dir", str(model_dir)])
        assert stop.value.code == 1
        error = capsys.readouterr().err
        assert error.startswith("deepclean-train: error: ")
        assert "notes.txt is truncated or not a TorchScript model" in error
        assert "Traceback" not in error
        assert not model_dir.exists()

    def test_help(
        self, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "argv", ["deepclean-train"])
        with pytest.raises(SystemExit) as stop:
            main(["publish", "--help"])
        assert stop.value.code == 0
        assert "--model_dir" in capsys.readouterr().out
        with pytest.raises(SystemExit) as stop:
            main(["--help"])
        assert stop.value.code == 0
        output = capsys.readouterr().out
        assert "fit" in output and "deepclean-train publish MODEL" in output
