"""``logger=mlflow``: one MLflow run per mtlrun run, in any tracking store.

Needs the ``mlflow`` package (``pip install 'mtlrun[mlflow]'``). Uses ``MlflowClient`` (no global
"active run"), so many runs in one process, as in a sweep, stay separate.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from mtlrun.errors import ConfigError
from mtlrun.loggers.base import LOGGERS, RunLogger, check_writable_folder
from mtlrun.results.run_folder import SUMMARY

#: MLflow's limits: values per ``log_batch`` call and characters per param value
MAX_METRICS, MAX_PARAMS, MAX_PARAM_CHARS = 1000, 100, 6000

STATUS = {"completed": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``mlflow.db`` in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


#: tracking-store URI schemes MLflow itself serves (its ``_tracking_store_registry``); database
#: schemes may name a driver (``postgresql+psycopg2``); plugins add theirs as ``mlflow.tracking_store``
#: entry points
SCHEMES = ("file", "databricks", "databricks-uc", "uc", "http", "https")
DATABASES = ("postgresql", "mysql", "sqlite", "mssql")
#: seconds to wait for an HTTP tracking server to accept a connection before the run folder exists
CONNECT_TIMEOUT_S = 5.0


def uri_key(tracking_uri: str | None) -> str:
    """How errors name the URI: the option, or the environment variable it came from."""
    if not tracking_uri and os.environ.get("MLFLOW_TRACKING_URI"):
        return "MLFLOW_TRACKING_URI"
    return "logger.tracking_uri"


def plugin_schemes() -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="mlflow.tracking_store")}


def check_tracking_uri(uri: str, key: str) -> None:
    """A URI MLflow can open: a known scheme, a host for a server (which accepts a connection), a
    writable folder for a file or SQLite store. Checked without importing mlflow or writing anything."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a local path
        scheme = ""
    base = scheme.split("+", 1)[0]
    if scheme and scheme not in SCHEMES and base not in DATABASES and scheme not in plugin_schemes():
        valid = ", ".join(f"{s}://" for s in (*SCHEMES, *DATABASES))
        raise ConfigError(f"{key}={uri} has an unknown scheme '{scheme}'; use one of {valid} or a folder")
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise ConfigError(f"{key}={uri} names no host; write {scheme}://HOST:PORT")
        try:
            port = parsed.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise ConfigError(f"{key}={uri} has a port that is not a number") from None
        from urllib.request import getproxies, proxy_bypass

        if getproxies().get(scheme) and not proxy_bypass(parsed.hostname):
            return  # reached through a proxy: the tracker's start (after the folder exists) checks it
        try:
            socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as ex:
            reason = ex.strerror or type(ex).__name__
            raise ConfigError(
                f"{key}={uri} cannot be reached ({reason}); start the tracking server or choose another {key}"
            ) from None
    elif base == "sqlite":
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if not path:
            raise ConfigError(f"{key}={uri} names no database file; write sqlite:///FILE (sqlite:////ABSOLUTE/FILE)")
        if path != ":memory:":
            check_writable_folder(Path(path).expanduser().parent, key)
    elif scheme in ("", "file"):
        path = parsed.path if scheme == "file" else uri
        check_writable_folder(Path(path).expanduser(), key)


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            params.update(flatten_params(value, name))
        else:
            params[name] = str(value)[:MAX_PARAM_CHARS]
    return params


def first_line(ex: BaseException) -> str:
    text = " ".join(str(ex).split("\n")[0].split())
    return f"{type(ex).__name__}: {text}" if text else type(ex).__name__


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
        self.key = uri_key(tracking_uri)
        try:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
        except Exception as ex:
            raise ConfigError(f"{self.key}={self.tracking_uri} cannot be used: {first_line(ex)}") from None
        self.log_artifacts = log_artifacts
        self.experiment = experiment
        self.tags = {
            "mtlrun.run_folder": str(self.output_dir.resolve()),
            **{str(k): str(v) for k, v in (tags or {}).items()},
        }
        self._run_id: str | None = None
        self._experiment: str | None = None

    @classmethod
    def preflight(cls, options: Mapping[str, Any]) -> None:
        if not options.get("experiment", "mtlrun"):
            raise ConfigError("logger.experiment must be a non-empty experiment name")
        uri = options.get("tracking_uri")
        check_tracking_uri(str(uri) if uri else default_tracking_uri(), uri_key(uri))

    def start(self) -> None:
        """Reach the tracking store: its experiment, created if it is new."""
        try:
            self._experiment = self._experiment_id(self.experiment)
        except Exception as ex:
            raise ConfigError(f"{self.key}={self.tracking_uri} cannot be used: {first_line(ex)}") from None

    @property
    def run_id(self) -> str:
        """The MLflow run, created at first use (a resumed run reuses its own instead)."""
        if self._run_id is None:
            experiment_id = self._experiment or self._experiment_id(self.experiment)
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
