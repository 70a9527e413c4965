"""``logger=mlflow``: one MLflow run per mtlrun run, in any tracking store.

Needs the ``mlflow`` package (``pip install 'mtlrun[mlflow]'``). Uses ``MlflowClient`` (no global
"active run"), so many runs in one process, as in a sweep, stay separate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from mtlrun.errors import ConfigError
from mtlrun.loggers.base import LOGGERS, RunLogger
from mtlrun.results.run_folder import SUMMARY

#: MLflow's limits: values per ``log_batch`` call and characters per param value
MAX_METRICS, MAX_PARAMS, MAX_PARAM_CHARS = 1000, 100, 6000

STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``mlflow.db`` in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            params.update(flatten_params(value, name))
        else:
            params[name] = str(value)[:MAX_PARAM_CHARS]
    return params


@LOGGERS.register("mlflow")
class MlflowLogger(RunLogger):
    """Params (the flattened config), metrics per epoch, tags, and the config and summary as artifacts.

    ``tracking_uri`` null: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<working folder>/mlflow.db``
    (browse with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``). Any URI MLflow accepts
    works (``http://host:5000``, ``databricks``, ``postgresql://...``).
    """

    def __init__(
        self,
        output_dir: Path,
        run_name: str,
        tracking_uri: Optional[str] = None,
        experiment: str = "mtlrun",
        tags: Optional[Dict[str, str]] = None,
        log_artifacts: bool = True,
    ) -> None:
        super().__init__(output_dir, run_name)
        if not experiment:
            raise ConfigError("logger.experiment must be a non-empty experiment name")
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as ex:
            raise ConfigError("logger=mlflow needs the mlflow package: pip install 'mtlrun[mlflow]'") from ex
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.log_artifacts = log_artifacts
        self.experiment = experiment
        self.tags = {
            "mtlrun.run_folder": str(self.output_dir.resolve()),
            **{str(k): str(v) for k, v in (tags or {}).items()},
        }
        self._run_id: str | None = None

    @property
    def run_id(self) -> str:
        """The MLflow run, created at first use (a resumed run reuses its own instead)."""
        if self._run_id is None:
            experiment_id = self._experiment_id(self.experiment)
            self._run_id = self.client.create_run(experiment_id, run_name=self.run_name, tags=self.tags).info.run_id
        return self._run_id

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "tracking_uri": self.tracking_uri}

    def resume(self, state: dict[str, Any]) -> None:
        """Continue the same MLflow run (marked running again); epochs trained again are logged again."""
        run_id = state.get("run_id")
        if not run_id:
            return
        self._run_id = str(run_id)
        self.client.update_run(self._run_id, status="RUNNING")

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # created meanwhile by a parallel job
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def log_config(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flatten_params(config).items()]
        for start in range(0, len(params), MAX_PARAMS):
            self.client.log_batch(self.run_id, params=params[start : start + MAX_PARAMS])
        if self.log_artifacts:
            self.client.log_text(self.run_id, yaml.safe_dump(dict(config), sort_keys=False), "config.yaml")

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, value, now, step) for name, value in scalars.items()]
        for start in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + MAX_METRICS])

    def close(self, status: str) -> None:
        summary = self.output_dir / SUMMARY
        if self.log_artifacts and summary.is_file():
            self.client.log_artifact(self.run_id, str(summary))
        self.client.set_tag(self.run_id, "mtlrun.status", status)
        self.client.set_terminated(self.run_id, status=STATUS.get(status, "FAILED"))
