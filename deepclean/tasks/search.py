"""Hyperparameter search on the training data with Ray Tune."""

from __future__ import annotations

import json
import os

import law
import luigi

from deepclean.config import PathParameter, shared
from deepclean.runs import content_identity, fingerprint
from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.data import DataParameters, Fetch
from deepclean.tasks.train import Train, TrainParameters


class SearchParameters(law.Task):
    """How the hyperparameter search runs; tasks that require
    :class:`Search` carry these."""

    search_dir = shared(
        PathParameter,
        description="folder of the searches (one folder per search)",
    )
    search_space = shared(
        PathParameter,
        description="YAML of fit options and their distributions",
    )
    search_samples = shared(
        luigi.IntParameter, description="trials drawn from the space"
    )
    search_epochs = shared(
        luigi.IntParameter,
        description="epochs of a trial that runs to the end (ASHA stops "
        "the others earlier)",
    )
    ray_address = shared(
        default="",
        significant=False,
        description="HOST:PORT of an existing Ray cluster's head (`ray "
        "start --head --port 6379` on a GPU node); empty: a local Ray",
    )

    def search_settings(self) -> dict:
        """Every setting that changes the search's result."""
        return {
            "training": Train.req(self).run_settings(),
            "space": content_identity(self.search_space),
            "samples": self.search_samples,
            "epochs": self.search_epochs,
        }

    def search_folder(self) -> str:
        """``{search_dir}/search-{fingerprint}``."""
        return os.path.join(
            self.search_dir,
            f"search-{fingerprint(self.search_settings())}",
        )


class Search(SearchParameters, DataParameters, TrainParameters, DeepCleanTask):
    """``deepclean-train search`` over the training span: Ray Tune trials
    of the ``Train`` configuration with one draw of ``search_space`` each,
    early-stopped by ASHA; writes ``best.yaml`` (the best draw, to stack
    after ``train_config``) and ``search.json``."""

    project = "train"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refuse_classical_stage("the hyperparameter search")

    def requires(self):
        return [] if self.data_fname else Fetch.req(self)

    def run_folder(self) -> str:
        return self.search_folder()

    def run_settings(self) -> dict:
        return self.search_settings()

    def output(self):
        return {
            "best": law.LocalFileTarget(
                os.path.join(self.run_folder(), "best.yaml")
            ),
            "summary": law.LocalFileTarget(
                os.path.join(self.run_folder(), "search.json")
            ),
        }

    def bind_paths(self) -> list[str]:
        return [
            *Train.req(self).bind_paths(),
            self.run_folder(),
            os.path.dirname(self.search_space),
        ]

    def command(self) -> list[str]:
        train = Train.req(self)
        device = (
            ["--trainer.accelerator=gpu", "--trainer.devices=1"]
            if self.gpus
            else ["--trainer.accelerator=cpu", "--trainer.devices=1"]
        )
        fit = [*train.fit_options(), *device]
        args = [
            self.executable("deepclean-train"),
            "search",
            f"--space={self.search_space}",
            f"--output_dir={self.run_folder()}",
            f"--fit_args={json.dumps(fit)}",
            f"--num_samples={self.search_samples}",
            f"--max_epochs={self.search_epochs}",
            f"--gpus_per_trial={1 if self.gpus else 0}",
        ]
        if self.ray_address:
            args.append(f"--ray_address={self.ray_address}")
        return args
