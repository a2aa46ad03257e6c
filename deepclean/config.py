"""Pipeline-wide settings, read from the ``[deepclean]`` section of luigi.cfg.

Every shared parameter is declared here once; tasks take it with
:func:`shared`, so ``luigi.cfg`` sets it for all of them under the
parameter's own name and the command line can still override it per task
(``clean_window_length = 5`` in luigi.cfg is ``--clean-window-length 5``).
A key of the section that no task knows is refused, naming the nearest
valid one, so a typo never silently leaves a default in place.

Importing this module also sets luigi's exit codes (``[retcode]``) that
luigi.cfg does not set: luigi's own defaults are 0 even when a task fails,
and a pipeline that did not finish must never exit 0.
"""

from __future__ import annotations

import difflib
import functools
import os

import luigi
import luigi.configuration

SECTION = "deepclean"
# keys of the section read directly rather than through a parameter
DIRECT_KEYS = frozenset({"binds"})
# exit codes of `law run` (luigi's documented recommendation)
RETCODES = {
    "unhandled_exception": 4,
    "missing_data": 3,
    "task_failed": 2,
    "already_running": 5,
    "scheduling_error": 6,
    "not_run": 7,
}


class ConfigError(ValueError):
    """The ``[deepclean]`` section of luigi.cfg has an unknown key."""


class PathParameter(luigi.Parameter):
    """A filesystem path, made absolute with ``~`` and ``$VARS`` expanded.

    Absolute paths keep a task's identity the same wherever it is run from,
    and are what the container binds.
    """

    def normalize(self, x: str) -> str:
        if not x:
            return x
        return os.path.abspath(os.path.expanduser(os.path.expandvars(x)))


@functools.cache
def _shared_class(parameter_class: type) -> type:
    class Shared(parameter_class):
        def __set_name__(self, owner: type, name: str) -> None:
            if hasattr(super(), "__set_name__"):
                super().__set_name__(owner, name)
            self._config_path = {"section": SECTION, "name": name}

    Shared.__name__ = Shared.__qualname__ = f"Shared{parameter_class.__name__}"
    return Shared


def shared(parameter_class: type = luigi.Parameter, **kwargs):
    """A parameter whose default is the ``[deepclean]`` key of its own
    name."""
    return _shared_class(parameter_class)(**kwargs)


def is_shared(parameter: luigi.Parameter) -> bool:
    """Whether ``parameter`` reads its default from ``[deepclean]``."""
    path = getattr(parameter, "_config_path", None)
    return bool(path) and path["section"] == SECTION


@functools.cache
def section_keys(task_classes: tuple[type, ...]) -> frozenset[str]:
    """The keys of ``[deepclean]`` that ``task_classes`` read (computed once
    per set of classes: every task checks the section when it is made)."""
    return DIRECT_KEYS | {
        name
        for task_class in task_classes
        for name, parameter in task_class.get_params()
        if is_shared(parameter)
    }


def check_section_keys(task_classes) -> None:
    """Refuse keys of ``[deepclean]`` that no task parameter reads.

    Args:
        task_classes: the pipeline's task classes.

    Raises:
        ConfigError: naming each unknown key and the nearest valid one.
    """
    config = luigi.configuration.get_config()
    if not config.has_section(SECTION):
        return
    valid = sorted(section_keys(tuple(task_classes)))
    unknown = sorted(set(config.options(SECTION)) - set(valid))
    if not unknown:
        return
    lines = []
    for key in unknown:
        near = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        lines.append(f"  {key}{hint}")
    raise ConfigError(
        f"unknown key(s) in the [{SECTION}] section of luigi.cfg:\n"
        + "\n".join(lines)
        + f"\nvalid keys: {', '.join(valid)}"
    )


def set_default_retcodes() -> None:
    """Give ``law run`` non-zero exit codes for failures that luigi.cfg
    does not configure itself."""
    config = luigi.configuration.get_config()
    if not config.has_section("retcode"):
        config.add_section("retcode")
    for name, code in RETCODES.items():
        if not config.has_option("retcode", name):
            config.set("retcode", name, str(code))


def problems_list(problems: str) -> list[str]:
    """Split a comma list of subtraction problems."""
    return [p.strip() for p in problems.split(",") if p.strip()]


def config_paths(paths: str) -> list[str]:
    """Absolute paths (``~`` expanded) of a comma list of files, in
    order, e.g. ``train_config``."""
    return [
        os.path.abspath(os.path.expanduser(path.strip()))
        for path in paths.split(",")
        if path.strip()
    ]


set_default_retcodes()
