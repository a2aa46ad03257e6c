"""law tasks of the DeepClean pipeline."""

from deepclean import messages
from deepclean.tasks.analyze import Analyze, Discover
from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.classical import Classical
from deepclean.tasks.clean import Clean, Evaluate
from deepclean.tasks.data import Fetch, Query
from deepclean.tasks.online import Online, Publish, Replay
from deepclean.tasks.pipeline import Pipeline
from deepclean.tasks.retrain import (
    Retrain,
    RetrainOnline,
    RetrainReport,
    StepClean,
    StepModel,
    StepTrain,
)
from deepclean.tasks.search import Search
from deepclean.tasks.train import Train

messages.install()

__all__ = [
    "Analyze",
    "Classical",
    "Clean",
    "DeepCleanTask",
    "Discover",
    "Evaluate",
    "Fetch",
    "Online",
    "Pipeline",
    "Publish",
    "Query",
    "Replay",
    "Retrain",
    "RetrainOnline",
    "RetrainReport",
    "Search",
    "StepClean",
    "StepModel",
    "StepTrain",
    "Train",
]
