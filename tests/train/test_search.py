"""``deepclean-train search``: Ray Tune trials of real training runs."""

import json
from pathlib import Path

import pytest
import yaml

from deepclean_train.cli import main, run
from deepclean_train.search import (
    SearchError,
    check_ray_address,
    load_space,
    overrides,
)


def test_two_trial_search_on_cpu(toy_fit_options, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(
        "model.learning_rate: {loguniform: [1.0e-3, 3.0e-2]}\n"
        "model.alpha: {choice: [0.5, 1.0]}\n"
    )
    output = tmp_path / "search"
    main(
        [
            "search",
            f"--space={space}",
            f"--output_dir={output}",
            f"--fit_args={json.dumps(toy_fit_options)}",
            "--num_samples=2",
            "--max_epochs=2",
            "--grace_period=1",
        ]
    )
    summary = json.loads((output / "search.json").read_text())
    assert len(summary["trials"]) == 2
    for trial in summary["trials"]:
        assert 1e-3 <= trial["config"]["model.learning_rate"] <= 3e-2
        assert trial["config"]["model.alpha"] in (0.5, 1.0)
        assert 1 <= trial["epochs"] <= 2
        assert 0 < trial["best"] < 2
        # each trial is a whole training run in its own folder
        folder = output / "trials" / trial["trial"]
        assert (folder / "metrics.csv").exists()
        if trial["status"] == "finished":
            assert (folder / "model.pt").exists()
    best = summary["best"]
    assert best["best"] == min(t["best"] for t in summary["trials"])
    if best["status"] == "finished":
        assert Path(best["model"]).exists()
    written = yaml.safe_load((output / "best.yaml").read_text())
    assert (
        written["model"]["learning_rate"]
        == (best["config"]["model.learning_rate"])
    )
    assert (output / "ray").is_dir() and (output / "tune").is_dir()
    assert "best: trial" in capsys.readouterr().out


def test_a_space_without_a_valid_configuration(toy_fit_options, tmp_path):
    space = tmp_path / "space.yaml"
    # 0.3 s is not a whole number of samples at the network's rate
    space.write_text("data.kernel_length: {choice: [0.3]}\n")
    with pytest.raises(SearchError, match="none of the 1 trials reported"):
        run(
            [
                "search",
                f"--space={space}",
                f"--output_dir={tmp_path / 'search'}",
                f"--fit_args={json.dumps(toy_fit_options)}",
                "--num_samples=1",
                "--max_epochs=1",
            ]
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty or not a mapping"),
        ("model.learning_rate: {normal: [0, 1]}", "unknown distribution"),
        ("model.learning_rate: {loguniform: [0, 1]}", "low > 0"),
        ("model.alpha: {uniform: [1, 0.5]}", "low < high"),
        ("model.alpha: {choice: []}", "non-empty list"),
    ],
)
def test_bad_spaces_are_refused(tmp_path, text, message):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    with pytest.raises(SearchError, match=message):
        load_space(space)


def test_overrides_are_json_options():
    arch = {"class_path": "deepclean_train.architectures.DilatedUNet"}
    assert overrides({"model.learning_rate": 0.01, "model.arch": arch}) == [
        "--model.learning_rate=0.01",
        '--model.arch={"class_path": '
        '"deepclean_train.architectures.DilatedUNet"}',
    ]


def test_a_ray_address_that_does_not_answer_is_refused():
    with pytest.raises(SearchError, match="no Ray cluster answers at"):
        check_ray_address("127.0.0.1:1", timeout=2)
    with pytest.raises(SearchError, match="is not HOST:PORT"):
        check_ray_address("headnode")
