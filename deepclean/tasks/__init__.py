"""law tasks of the DeepClean pipeline."""

from deepclean.tasks.base import DeepCleanTask

__all__ = ["DeepCleanTask"]
