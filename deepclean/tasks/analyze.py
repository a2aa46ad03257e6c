"""Rank the witnesses a trained model relies on."""

from __future__ import annotations

import json
import os

import law
import luigi

from deepclean.config import PathParameter, shared
from deepclean.runs import content_identity, fingerprint
from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.data import DataParameters, Fetch
from deepclean.tasks.train import ModelParameters, Train, TrainParameters


class Analyze(DataParameters, ModelParameters, DeepCleanTask):
    """``deepclean-train analyze``: saliency, coherence and ablation of
    every witness of a model, and their ranking, into
    ``{analysis_dir}/{run}/``: ``analysis.json``, ``analysis.h5`` and
    ``analysis.html``.

    By default the model is Train's, analysed on its own training and
    validation spans; ``--model`` takes any exported model and
    ``--analysis-start``/``--analysis-end`` any stretch of the fetched
    data (one span, which is ranked).
    """

    project = "train"

    analysis_dir = shared(
        PathParameter,
        description="folder of the witness analyses (one folder per model, "
        "stretch and settings)",
    )
    analysis_start = luigi.FloatParameter(
        default=0.0,
        description="GPS start of the stretch to analyse; 0: the model's "
        "training and validation spans",
    )
    analysis_end = luigi.FloatParameter(
        default=0.0, description="GPS end of the stretch to analyse"
    )
    analysis_fftlength = luigi.OptionalFloatParameter(
        default=None,
        description="Welch segment length of the coherence and the "
        "ablation's ASD ratios, s (resolution 1 / fftlength Hz); empty: "
        "4 s, shorter where a span needs it",
    )

    def requires(self):
        requirements = {"data": self.classical_task() or Fetch.req(self)}
        if self.model_requirement() is not None:
            requirements["model"] = self.model_requirement()
        return requirements

    def stretch(self) -> tuple[float, float] | None:
        """The GPS stretch asked for; None for the model's spans.

        Raises:
            ValueError: an end that does not follow the start.
        """
        if not (self.analysis_start or self.analysis_end):
            return None
        if self.analysis_end <= self.analysis_start:
            raise ValueError(
                f"analysis_end {self.analysis_end} must be after "
                f"analysis_start {self.analysis_start}"
            )
        return (self.analysis_start, self.analysis_end)

    def data_files(self) -> list[str]:
        """Input files holding the stretch (Train's training files for
        the model's own spans); the classical stage's residual files when
        it is on."""
        stretch = self.stretch()
        if stretch is None:
            return Train.req(self).training_files()
        files = [
            path
            for path, start, end in self.input_files()
            if start < stretch[1] and end > stretch[0]
        ]
        if not files:
            raise ValueError(
                f"no fetched file overlaps GPS {stretch[0]}-{stretch[1]}; "
                f"the data run covers {self.start}-{self.end}"
            )
        return files

    def run_settings(self) -> dict:
        classical = self.classical_task()
        extra = (
            {} if classical is None else {"classical": classical.run_name()}
        )
        return {
            **extra,
            "model": self.model_identity(),
            "data": os.path.basename(self.data_folder()),
            "stretch": self.stretch(),
            "fftlength": self.analysis_fftlength,
        }

    def run_folder(self) -> str:
        return os.path.join(
            self.analysis_dir,
            f"{self.model_label()}-{fingerprint(self.run_settings())}",
        )

    def output(self):
        return law.LocalFileTarget(
            os.path.join(self.run_folder(), "analysis.json")
        )

    def bind_paths(self) -> list[str]:
        return [
            self.run_folder(),
            os.path.dirname(self.model_path()),
            *{os.path.dirname(path) for path in self.data_files()},
            *super().bind_paths(),
        ]

    def command(self) -> list[str]:
        files = self.data_files()
        args = [
            self.executable("deepclean-train"),
            "analyze",
            f"--model={self.model_path()}",
            f"--fname=[{','.join(files)}]",
            f"--output_dir={self.run_folder()}",
        ]
        if self.analysis_fftlength is not None:
            args.append(f"--settings.fftlength={self.analysis_fftlength}")
        stretch = self.stretch()
        if stretch is not None:
            args.append(f"--spans={json.dumps({'stretch': list(stretch)})}")
        if self.use_wandb:
            args.append("--wandb.enabled=true")
        return args


class Discover(DataParameters, TrainParameters, DeepCleanTask):
    """``deepclean-train discover``: trains on every candidate witness,
    ranks them, retrains on the ``discover_top_k`` most important and on
    all but the low-saliency, high-coherence ones, and reports whether
    the reduced sets recover the full set's in-band ASD ratio, into
    ``{discover_dir}/{run}/`` (``discover.json``, ``discover.html`` and a
    folder per training).

    The trainings use Train's configuration, spans and witness products;
    the candidates are a channel-list file or every channel of the
    training file. The ``[Discover]`` section of ``luigi.cfg`` points the
    demo at the simulated detector's candidate pool.
    """

    project = "train"

    discover_dir = shared(
        PathParameter,
        description="folder of the discovery runs (one per data, "
        "candidates and settings)",
    )
    candidates = PathParameter(
        default="",
        description="file of candidate witness channels, one per line; "
        "empty: every channel of the training file besides strain",
    )
    discover_top_k = shared(
        luigi.IntParameter,
        description="witnesses kept in the reduced set",
    )
    discover_tolerance = shared(
        luigi.FloatParameter,
        description="largest rise of the in-band ASD ratio over the full "
        "set's that counts as recovered",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refuse_classical_stage("witness discovery")

    def requires(self):
        return Fetch.req(self)

    def run_settings(self) -> dict:
        train = Train.req(self)
        return {
            "data": os.path.basename(self.data_folder()),
            "candidates": (
                content_identity(self.candidates) if self.candidates else None
            ),
            "training": {
                key: value
                for key, value in train.run_settings().items()
                if key != "witnesses"
            },
            "top_k": self.discover_top_k,
            "tolerance": self.discover_tolerance,
        }

    def run_folder(self) -> str:
        return os.path.join(
            self.discover_dir,
            f"discover-{fingerprint(self.run_settings())}",
        )

    def output(self):
        return law.LocalFileTarget(
            os.path.join(self.run_folder(), "discover.json")
        )

    def bind_paths(self) -> list[str]:
        paths = [*Train.req(self).bind_paths()]
        if self.candidates:
            paths.append(os.path.dirname(self.candidates))
        return [self.run_folder(), *paths]

    def fit_args(self) -> list[str]:
        """Train's ``fit`` options without its data files, witnesses and
        product witness (discovery chooses those) or the analysis switch
        (the full set's analysis ranks the candidates)."""
        chosen = (
            "--data.fname=",
            "--data.witnesses=",
            "--data.product_witness=",
            "--analysis.enabled=",
        )
        return [
            option
            for option in Train.req(self).fit_options()
            if not option.startswith(chosen)
        ]

    def command(self) -> list[str]:
        train = Train.req(self)
        args = [
            self.executable("deepclean-train"),
            "discover",
            f"--fname=[{','.join(train.training_files())}]",
            f"--output_dir={self.run_folder()}",
            f"--strain_channel={self.ifo}:{self.strain_channel}",
            f"--fit_args={json.dumps(self.fit_args())}",
            f"--top_k={self.discover_top_k}",
            f"--tolerance={self.discover_tolerance}",
        ]
        if self.candidates:
            args.append(f"--candidates={self.candidates}")
        if self.witness_products:
            args.append(f"--product_witness={train.product_witness()}")
        return args
