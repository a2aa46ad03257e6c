"""Hyperparameter search with Ray Tune: ``deepclean-train search``.

Each trial is a real ``deepclean-train fit`` run (in a Ray worker, into
``{output_dir}/trials/{trial}``) with the base options and one draw of
the search space as overrides; it reports ``val_asdr`` after every
validation, and the ASHA scheduler stops trials that fall behind at each
rung. Ray runs locally by default (its session files in
``{output_dir}/ray``, Tune's in ``{output_dir}/tune``) or on an existing
cluster (``--ray_address``). The search writes

- ``search.json``: every trial's overrides, best ``val_asdr``, epochs
  and status, and the best trial;
- ``best.yaml``: the best trial's overrides as a YAML to stack after the
  base configs (the configuration retraining starts from);

and prints the trials as a table.

The search space is a YAML mapping from ``fit`` options to one
distribution each::

    model.learning_rate: {loguniform: [1.0e-3, 3.0e-2]}
    model.alpha: {uniform: [0.5, 1.0]}
    data.kernel_length: {choice: [1.0, 2.0]}
    model.arch:
      choice:
        - {class_path: deepclean_train.architectures.DeepCleanAutoencoder}
        - {class_path: deepclean_train.architectures.DilatedUNet}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml

from deepclean_io.atomic import check_writable, write_text_atomic

DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
METRIC = "val_asdr"
SUMMARY_NAME = "search.json"
BEST_NAME = "best.yaml"
TRIAL_CALLBACK = "deepclean_train.search.ReportToTune"
# Ray's session folder must have a short path: its sockets live inside
_SOCKET_PATH_LIMIT = 40


class SearchError(ValueError):
    """A search that cannot start or whose every trial failed."""


def load_space(path: Path) -> dict[str, dict[str, list[Any]]]:
    """Read and check a search-space YAML.

    Args:
        path: YAML mapping ``fit`` options (``model.learning_rate``) to
            ``{distribution: arguments}``: ``uniform``, ``loguniform``
            and ``randint`` take ``[low, high]``, ``choice`` a list.

    Returns:
        The mapping.

    Raises:
        SearchError: an empty space, an unknown distribution or bad
            arguments, naming the option.
    """
    space = yaml.safe_load(Path(path).read_text())
    if not isinstance(space, dict) or not space:
        raise SearchError(
            f"search space {path} is empty or not a mapping; map fit "
            "options to distributions, e.g. 'model.learning_rate: "
            "{loguniform: [1.0e-3, 3.0e-2]}'"
        )
    for option, distribution in space.items():
        if not isinstance(distribution, dict) or len(distribution) != 1:
            raise SearchError(
                f"{option}: give one distribution of {DISTRIBUTIONS}, "
                f"got {distribution!r}"
            )
        ((kind, arguments),) = distribution.items()
        if kind not in DISTRIBUTIONS:
            raise SearchError(
                f"{option}: unknown distribution {kind!r}; use one of "
                f"{DISTRIBUTIONS}"
            )
        if not isinstance(arguments, list) or not arguments:
            raise SearchError(f"{option}: {kind} takes a non-empty list")
        if kind != "choice":
            valid = (
                len(arguments) == 2
                and all(isinstance(v, int | float) for v in arguments)
                and arguments[0] < arguments[1]
                and (kind != "loguniform" or arguments[0] > 0)
            )
            if not valid:
                raise SearchError(
                    f"{option}: {kind} takes [low, high] with low < high"
                    f"{' and low > 0' if kind == 'loguniform' else ''}, got "
                    f"{arguments}"
                )
    return space


def _tune_space(space: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    from ray import tune

    makers = {
        "uniform": lambda a: tune.uniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(*a),
        "choice": tune.choice,
    }
    return {
        option: makers[kind](arguments)
        for option, distribution in space.items()
        for kind, arguments in distribution.items()
    }


class ReportToTune(pl.Callback):
    """Reports ``val_asdr`` to Ray Tune after each validation (a Tune
    scheduler may stop the trial there)."""

    def on_validation_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        if trainer.sanity_checking or METRIC not in trainer.callback_metrics:
            return
        from ray import tune

        tune.report(
            {
                METRIC: float(trainer.callback_metrics[METRIC]),
                "epoch": trainer.current_epoch,
            }
        )


def overrides(config: dict[str, Any]) -> list[str]:
    """A draw of the search space as ``fit`` options (JSON values)."""
    return [f"--{option}={json.dumps(config[option])}" for option in config]


def _run_trial(
    config: dict[str, Any], fit_args: list[str], trials_dir: Path
) -> None:
    """One trial: ``deepclean-train fit`` with the draw as overrides."""
    from ray import tune

    from deepclean_train.cli import run

    folder = trials_dir / tune.get_context().get_trial_id()
    run(
        [
            "fit",
            *fit_args,
            *overrides(config),
            f"--trainer.default_root_dir={folder}",
            f"--trainer.callbacks+={TRIAL_CALLBACK}",
            "--trainer.enable_progress_bar=false",
            "--analysis.enabled=false",
        ]
    )


def check_ray_address(address: str, timeout: float = 10.0) -> None:
    """Refuse a Ray address that does not answer (``ray.init`` would wait
    for minutes).

    Raises:
        SearchError: nothing accepts connections at ``host:port``.
    """
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise SearchError(
            f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise SearchError(
            f"no Ray cluster answers at {address} ({error}); start one on "
            "the GPU node with `ray start --head --port 6379` and pass "
            "HOST:6379, or leave ray_address empty for a local Ray"
        ) from error


def _local_session_dir(output_dir: Path) -> str:
    """A short path to ``{output_dir}/ray`` (a link in the temporary
    folder): Ray's sockets live in its session folder, and socket paths
    are limited to about 100 characters."""
    target = (output_dir / "ray").resolve()
    target.mkdir(parents=True, exist_ok=True)
    if len(str(target)) <= _SOCKET_PATH_LIMIT:
        return str(target)
    digest = hashlib.sha256(str(target).encode()).hexdigest()[:10]
    link = Path(tempfile.gettempdir()) / f"dcray-{digest}"
    if link.is_symlink() and link.resolve() != target:
        link.unlink()
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)
    return str(link)


@dataclass(frozen=True)
class TrialRow:
    """One trial of a search.

    Attributes:
        trial: Ray Tune's trial id.
        config: The draw, by ``fit`` option.
        best: Lowest ``val_asdr`` it reported (NaN for none).
        epochs: Validations it reported.
        status: ``finished``, ``stopped`` (by the scheduler) or
            ``failed: ...``.
    """

    trial: str
    config: dict[str, Any]
    best: float
    epochs: int
    status: str


def _rows(results, max_epochs: int | None) -> list[TrialRow]:
    rows = []
    for result in results:
        frame = result.metrics_dataframe
        reports = (
            [] if frame is None or METRIC not in frame else list(frame[METRIC])
        )
        if result.error is not None:
            status = f"failed: {str(result.error).strip().splitlines()[-1]}"
        elif max_epochs is not None and len(reports) < max_epochs:
            status = "stopped"
        else:
            status = "finished"
        rows.append(
            TrialRow(
                trial=str(
                    (result.metrics or {}).get(
                        "trial_id", Path(result.path or "").name
                    )
                ),
                config=dict(result.config),
                best=min(reports, default=math.nan),
                epochs=len(reports),
                status=status,
            )
        )
    return rows


def _nested(config: dict[str, Any]) -> dict[str, Any]:
    """Dotted options as nested YAML sections."""
    nested: dict[str, Any] = {}
    for option, value in config.items():
        *parents, leaf = option.split(".")
        section = nested
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = value
    return nested


def _table(rows: Sequence[TrialRow], options: Sequence[str]) -> str:
    def text(value: Any) -> str:
        if isinstance(value, dict) and "class_path" in value:
            value = value["class_path"].rsplit(".", 1)[-1]
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    header = ["trial", *options, METRIC, "epochs", "status"]
    lines = [header]
    for row in sorted(rows, key=lambda r: (math.isnan(r.best), r.best)):
        lines.append(
            [
                row.trial,
                *(text(row.config.get(option)) for option in options),
                text(row.best),
                str(row.epochs),
                row.status,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        )
        for line in lines
    )


def search(
    space: Path,
    output_dir: Path,
    fit_args: list[str],
    num_samples: int = 8,
    max_epochs: int | None = None,
    grace_period: int = 2,
    reduction_factor: int = 2,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_concurrent: int | None = None,
    ray_address: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Search hyperparameters with Ray Tune and ASHA.

    Args:
        space: Search-space YAML (:func:`load_space`).
        output_dir: Folder of ``search.json``, ``best.yaml``, the trials'
            runs (``trials/``) and Ray's and Tune's files.
        fit_args: Base ``deepclean-train fit`` options (configs, data);
            every trial adds its draw, its folder and the Tune callback.
        num_samples: Trials drawn.
        max_epochs: Longest trial in epochs, ASHA's ``max_t``, and what
            a trial must reach to count as finished; set it to the
            configs' ``trainer.max_epochs`` (also passed to every trial
            when given).
        grace_period: Epochs before ASHA may stop a trial.
        reduction_factor: ASHA keeps one trial in this many at each rung.
        cpus_per_trial: CPU cores reserved per trial.
        gpus_per_trial: GPUs per trial (fractions share one).
        max_concurrent: Trials at once; None: as many as the resources
            allow.
        ray_address: An existing Ray cluster (``HOST:PORT`` of its head,
            ``ray start --head``); None starts a local Ray.
        seed: Seed of the draws.

    Returns:
        The summary written to ``search.json``.

    Raises:
        SearchError: a bad space, a Ray address that does not answer, or
            no trial that reported ``val_asdr`` (no valid configuration in
            the space); the first trial error is quoted.
    """
    # workers run this environment's Python, not a fresh `uv run` project
    # environment (Ray's default when the driver was started by uv run;
    # read when ray is first imported)
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    parsed = load_space(space)
    if num_samples < 1:
        raise SearchError(f"num_samples must be >= 1, got {num_samples}")
    output_dir = check_writable(output_dir, "--output_dir").resolve()
    if ray_address:
        check_ray_address(ray_address)
    base = list(fit_args)
    if max_epochs is not None:
        base.append(f"--trainer.max_epochs={max_epochs}")
    if ray_address:
        ray.init(address=ray_address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=max(1, os.cpu_count() or 1),
            num_gpus=None if gpus_per_trial else 0,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=_local_session_dir(output_dir),
        )
    try:
        trainable = tune.with_resources(
            partial(
                _run_trial, fit_args=base, trials_dir=output_dir / "trials"
            ),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            param_space=_tune_space(parsed),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="min",
                num_samples=num_samples,
                max_concurrent_trials=max_concurrent,
                search_alg=BasicVariantGenerator(random_state=seed),
                scheduler=ASHAScheduler(
                    time_attr="training_iteration",
                    # past the last epoch: a trial that reaches it ends
                    # on its own and exports its model
                    max_t=(max_epochs or 1000) + 1,
                    grace_period=grace_period,
                    reduction_factor=reduction_factor,
                ),
            ),
            run_config=tune.RunConfig(
                name="tune", storage_path=str(output_dir), verbose=0
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    rows = _rows(results, max_epochs)
    reported = [row for row in rows if row.epochs]
    if not reported:
        errors = [row.status for row in rows if row.status != "finished"]
        raise SearchError(
            f"none of the {len(rows)} trials reported {METRIC}: no valid "
            f"configuration in {space}? First error: "
            f"{errors[0] if errors else 'none'}"
        )
    best = min(reported, key=lambda row: row.best)
    model = output_dir / "trials" / best.trial / "model.pt"
    summary = {
        "space": parsed,
        "fit_args": base,
        "trials": [row.__dict__ for row in rows],
        "best": {
            **best.__dict__,
            "model": str(model) if model.exists() else None,
        },
    }
    write_text_atomic(
        output_dir / BEST_NAME,
        f"# best of {len(rows)} trials ({METRIC} {best.best:.4f}, trial "
        f"{best.trial}); stack after the search's base configs\n"
        + yaml.safe_dump(_nested(best.config), sort_keys=False),
    )
    write_text_atomic(
        output_dir / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n"
    )
    print(_table(rows, list(parsed)))
    print(f"best: trial {best.trial}, {METRIC} {best.best:.4f}")
    print(f"configuration: {output_dir / BEST_NAME}")
    return summary
