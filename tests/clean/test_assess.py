"""``deepclean-clean evaluate``: clean a simulated stretch, then judge it."""

import json

import pytest
import torch

from deepclean_clean.assess import assess, read_cleaned
from deepclean_clean.clean import clean
from deepclean_clean.report import HTML_NAME, JSON_NAME
from deepclean_data.simulate import simulate
from deepclean_engine import CleaningConfig, save_exported_model

SAMPLE_RATE = 512.0
START = 1_000_000_000
STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = [
    "H1:ASC-CHARD_P_INMON",
    "H1:ASC-DHARD_Y_INMON",
    "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
]
MAINS = WITNESSES[2]


class MainsLine(torch.nn.Module):
    """Predicts noise as a scaled copy of the mains monitor."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return witnesses[:, 2] * self.scale


def save_mains_model(path, **metadata):
    """Export :class:`MainsLine` with the test's channels and band, and
    further ``metadata``."""
    config = CleaningConfig(sample_rate=SAMPLE_RATE, bands=((55.0, 65.0),))
    return save_exported_model(
        MainsLine(1e-24),
        {
            "strain_channel": STRAIN,
            "witnesses": WITNESSES,
            "sample_rate": SAMPLE_RATE,
            "bands": [[55.0, 65.0]],
            "cleaning": config.to_dict(),
            **metadata,
        },
        path,
    )


@pytest.fixture(scope="module")
def cleaned_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    data = simulate(
        root / "data",
        START,
        384,
        STRAIN,
        WITNESSES,
        MAINS,
        SAMPLE_RATE,
        seed=4,
        progress=False,
    )
    model = save_mains_model(root / "model" / "model.pt")
    clean(
        model,
        [data],
        root / "cleaned",
        start=START + 256,
        end=START + 382,
        file_length=64,
        progress=False,
    )
    return root, data, model


def assess_run(
    cleaned_run,
    output_dir,
    end: float,
    mains_channel: str = MAINS,
    **options,
) -> dict:
    """Evaluate the cleaned run from START + 256 to ``end``, baselines
    fitted on the 256 s before unless ``options`` say otherwise."""
    root, data, model = cleaned_run
    return assess(
        model,
        data,
        root / "cleaned",
        output_dir,
        start=START + 256,
        end=end,
        train_file=data,
        mains_channel=mains_channel,
        **{"train_start": START, "train_end": START + 256, **options},
    )


def test_report_compares_deepclean_classical_peers_and_ideal(cleaned_run):
    root = cleaned_run[0]
    headline = assess_run(cleaned_run, root / "report", START + 380)
    methods = {"DeepClean", "Wiener", "Wiener + products", "NOMAD"}
    assert set(headline) == methods | {"ideal"}
    for numbers in (headline[name] for name in methods):
        assert {"in_band_asd_ratio", "range_gain", "excess_over_ideal"} <= (
            set(numbers)
        )
    # the baselines remove coupled noise on the simulator
    assert headline["Wiener + products"]["in_band_asd_ratio"] < 0.9
    assert headline["NOMAD"]["in_band_asd_ratio"] < 0.9
    saved = json.loads((root / "report" / JSON_NAME).read_text())
    assert saved["headline"]["Wiener"]["in_band_asd_ratio"] == pytest.approx(
        headline["Wiener"]["in_band_asd_ratio"]
    )
    assert (root / "report" / HTML_NAME).exists()


def test_products_use_the_given_mains_channel(cleaned_run, tmp_path):
    def products_ratio(mains_channel: str) -> float:
        headline = assess_run(
            cleaned_run, tmp_path / mains_channel, START + 320, mains_channel
        )
        return headline["Wiener + products"]["in_band_asd_ratio"]

    # products of an angular channel miss the bilinear sidebands
    assert products_ratio(MAINS) < products_ratio(WITNESSES[0]) - 0.02


def test_mains_channel_must_be_a_witness(cleaned_run, tmp_path):
    with pytest.raises(ValueError) as error:
        assess_run(
            cleaned_run,
            tmp_path / "report",
            START + 320,
            "H1:PEM-EX_MAINSMON_EBAY_1_DQ",
        )
    message = str(error.value)
    assert "'H1:PEM-EX_MAINSMON_EBAY_1_DQ' is not among" in message
    assert "--mains_channel" in message
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("train_start", "train_end"), [(START + 64, START + 300), (None, None)]
)
def test_baselines_fitted_on_the_stretch_are_refused(
    cleaned_run, tmp_path, train_start, train_end
):
    with pytest.raises(ValueError) as error:
        assess_run(
            cleaned_run,
            tmp_path / "report",
            START + 320,
            train_start=train_start,
            train_end=train_end,
        )
    message = str(error.value)
    assert "overlaps the baselines' training span" in message
    assert "--train_start" in message
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("key", ["train_span", "valid_span"])
def test_a_stretch_the_model_was_fitted_on_is_refused(
    cleaned_run, tmp_path, key
):
    root, data, _ = cleaned_run
    model = save_mains_model(
        tmp_path / "model.pt", **{key: [START + 330, START + 340]}
    )
    with pytest.raises(ValueError, match="overlaps the model's") as error:
        assess_run((root, data, model), tmp_path / "report", START + 380)
    # the model's spans are fixed: only the stretch can move
    assert "--start" in str(error.value)
    assert "--train_start" not in str(error.value)
    # a stretch that ends where the span starts is out of sample
    assess_run((root, data, model), tmp_path / "report", START + 330)
    assert (tmp_path / "report").exists()


def test_cleaned_span_must_be_covered(cleaned_run):
    root, _, _ = cleaned_run
    values = read_cleaned(
        root / "cleaned", f"{STRAIN}_DC", START + 260, START + 300
    )
    assert values.shape == (40 * 512,)
    with pytest.raises(ValueError, match="run deepclean-clean clean"):
        read_cleaned(
            root / "cleaned", f"{STRAIN}_DC", START + 200, START + 300
        )


def test_report_logged_to_wandb_offline(cleaned_run, tmp_path, monkeypatch):
    from deepclean_tracking import WandbSettings

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    headline = assess_run(
        cleaned_run,
        tmp_path / "report",
        START + 320,
        wandb=WandbSettings(enabled=True, group="test", tags=["ci"]),
    )
    (run,) = (tmp_path / "report" / "wandb").glob("offline-run-*")
    (records,) = run.glob("*.wandb")
    assert b"DeepClean/in_band_asd_ratio" in records.read_bytes()
    (page,) = run.glob("files/media/html/report_*.html")
    assert "bokeh" in page.read_text().lower()
    assert headline["DeepClean"]["in_band_asd_ratio"] > 0
