"""Weights & Biases settings shared by training and evaluation.

The API key is read by wandb itself from ``WANDB_API_KEY`` (forwarded into
containers only for jobs with W&B enabled); it is never an argument, so it
never lands in a command line, a config file or a log.
"""

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WANDB_HOST = ("api.wandb.ai", 443)


@dataclass
class WandbSettings:
    """Weights & Biases logging.

    Attributes:
        enabled: log to W&B as well as to local files.
        project: W&B project.
        entity: W&B team or user; the account default when None.
        group: run group (e.g. one retraining campaign).
        name: run name; W&B makes one up when None.
        tags: run tags.
        offline: write the run locally for a later ``wandb sync``. None:
            offline when ``WANDB_API_KEY`` is unset or the W&B server is
            unreachable.
    """

    enabled: bool = False
    project: str = "deepclean"
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    offline: bool | None = None


def wandb_offline(settings: WandbSettings) -> bool:
    """Whether W&B must log offline (see :class:`WandbSettings`)."""
    if settings.offline is not None:
        return settings.offline
    if not os.environ.get("WANDB_API_KEY"):
        return True
    try:
        socket.create_connection(WANDB_HOST, timeout=3).close()
    except OSError:
        return True
    return False


def log_run(
    settings: WandbSettings,
    directory: str | os.PathLike,
    job_type: str,
    metrics: dict[str, float],
    html: dict[str, Path] | None = None,
) -> Path | None:
    """Log one finished job (numbers and HTML pages) as a W&B run.

    Args:
        settings: W&B settings; nothing happens unless ``enabled``.
        directory: folder of the local run files (``wandb/`` inside).
        job_type: W&B job type, e.g. ``"evaluate"``.
        metrics: flat name -> number.
        html: name -> HTML file to attach (e.g. the report).

    Returns:
        The local run folder, or None when W&B is disabled.
    """
    if not settings.enabled:
        return None
    import wandb

    run = wandb.init(
        project=settings.project,
        entity=settings.entity,
        group=settings.group,
        name=settings.name,
        tags=settings.tags,
        job_type=job_type,
        dir=str(directory),
        mode="offline" if wandb_offline(settings) else "online",
    )
    logged: dict[str, Any] = dict(metrics)
    for name, path in (html or {}).items():
        logged[name] = wandb.Html(Path(path).read_text())
    run.log(logged)
    run.summary.update(metrics)
    folder = Path(run.dir).parent
    run.finish()
    # later runs in this process start from fresh settings
    wandb.teardown()
    return folder
