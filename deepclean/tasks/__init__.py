"""law tasks of the DeepClean pipeline."""

from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.data import Fetch, Query
from deepclean.tasks.pipeline import Pipeline

__all__ = ["DeepCleanTask", "Fetch", "Pipeline", "Query"]
