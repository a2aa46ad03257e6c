"""Pipeline-wide settings, read from the ``[deepclean]`` section of luigi.cfg.

Every shared parameter is declared here once; tasks take it with
``config_path`` pointing at this section, so ``luigi.cfg`` sets it for all of
them and the command line can still override it per task.
"""

from __future__ import annotations

import os

import luigi

SECTION = "deepclean"


class PathParameter(luigi.Parameter):
    """A filesystem path, made absolute with ``~`` and ``$VARS`` expanded.

    Absolute paths keep a task's identity the same wherever it is run from,
    and are what the container binds.
    """

    def normalize(self, x: str) -> str:
        if not x:
            return x
        return os.path.abspath(os.path.expanduser(os.path.expandvars(x)))


def shared(name: str, parameter_class=luigi.Parameter, **kwargs):
    """A parameter whose default lives in ``[deepclean] name``."""
    return parameter_class(
        config_path={"section": SECTION, "name": name}, **kwargs
    )


def problems_list(problems: str) -> list[str]:
    """Split a comma list of subtraction problems."""
    return [p.strip() for p in problems.split(",") if p.strip()]
