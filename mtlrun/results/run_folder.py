"""The run folder's owner: its file names, typed records, the one writer and the readers.

Every module that reads or writes a run folder goes through here, so the layout and the meaning of
each field live in one place. Only JSON and YAML are read (never pickles), and readers are tolerant:
a missing or corrupt file is ``None`` (or a :class:`RunFolderError` with one line where the caller
needs the file), a half-written last line of ``metrics.jsonl`` is skipped.

NaN convention: JSON has no NaN or infinity, so non-finite floats are written as the strings
``"nan"``, ``"inf"``, ``"-inf"`` (``mtlrun.results.atomic``) and read back as floats by :func:`number`.

>>> import tempfile
>>> folder = RunFolder(tempfile.mkdtemp())
>>> folder.write_summary(Summary(status="completed", metrics={"best": {"epoch": 3, "test": {"t": {"mae": "nan"}}}}))
>>> summary = folder.read_summary()
>>> summary.status, summary.epoch("best"), summary.results("best", "test")
('completed', 3, {'t': {'mae': nan}})
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mtlrun.results.atomic import write_json, write_jsonl, write_text
from mtlrun.results.transfer_report import TransferReport
from mtlrun.results.values import number

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
TRANSFER = "transfer.json"
REPORT_MD = "report.md"
DIAGNOSTICS = "diagnostics.json"
RUN_LOG = "run.log"
PLOTS = "plots"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINTS}/last.pt"
BEST_CHECKPOINT = f"{CHECKPOINTS}/best.pt"
HYDRA_DIR = ".hydra"
CONFIG = f"{HYDRA_DIR}/config.yaml"
HYDRA_CONFIG = f"{HYDRA_DIR}/hydra.yaml"
OVERRIDES = f"{HYDRA_DIR}/overrides.yaml"
SWEEP_SUMMARY = "sweep_summary.json"
SWEEP_REPORT = "sweep_report.md"

#: statuses of a run that has stopped; ``running`` is the only other one
FINISHED = ("completed", "diverged", "failed", "interrupted")

Metrics = dict[str, dict[str, float]]  # {task: {metric: value}}


#: the primary config mtlrun's entry point composes (``--config-path``/``--config-name`` change them)
PACKAGED_CONFIGS = "mtlrun.conf"
PACKAGED_CONFIG_NAME = "config"
#: overrides that say how a run was launched, not what it trains: left out of printed commands
LAUNCH_ONLY_KEYS = ("resume",)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


@dataclass(frozen=True)
class LaunchArguments:
    """A run's command line, to print commands that compose the same config: Hydra's flags that
    choose the configs (``--config-dir``, ``--config-path``, ``--config-name``) and the overrides
    (``hydra.searchpath`` and the task's own, less ``resume``)."""

    flags: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


class RunFolderError(ValueError):
    """A run folder's file is missing or unreadable (one line, naming the file)."""


@dataclass
class RunIdentity:
    """What was run: the group choices, the task set and the seed."""

    dataset: str = ""
    arch: str = ""
    balancer: str = ""
    encoder: str = ""
    tasks: list[str] | None = None
    seed: int = 0


@dataclass
class Summary:
    """``summary.json``: the state and results of one run."""

    status: str = "running"
    run: RunIdentity = field(default_factory=RunIdentity)
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    encoder: dict[str, Any] = field(default_factory=dict)  # the resolved encoder (``auto`` resolved)
    primary: dict[str, str] = field(default_factory=dict)  # {task: primary metric}
    directions: dict[str, dict[str, bool]] = field(default_factory=dict)  # {task: {metric: higher is better}}
    parameters: dict[str, Any] = field(default_factory=dict)
    #: what the balancer needs of the model: ``task_gradients`` (a backward pass per task on the shared
    #: parameters) and ``representation`` (``rep_grad``: one shared representation); read by the report's
    #: suggestions, which must keep the balancer valid on another architecture
    balancer_uses: dict[str, bool] = field(default_factory=dict)
    device: str | None = None
    dataset_info: dict[str, Any] = field(default_factory=dict)
    epochs_completed: int = 0
    #: early stopping (``trainer.early_stopping.patience``) ended training before ``trainer.epochs``
    stopped_early: bool = False
    #: ``{"last"|"best": {"epoch": int, "val": Metrics, "test": Metrics}}`` once completed
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: total_s, train_s, eval_s over every session of a resumed run (total_s >= train_s + eval_s),
    #: setup_s of the last session, steps, steps_per_s
    timings: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    report_error: str | None = None
    #: where a ``diverged`` run went non-finite: step, epoch, tasks, gradient, policy
    divergence: dict[str, Any] | None = None
    #: steps skipped for a non-finite loss or gradient (``trainer.on_nan=skip``)
    skipped_steps: int = 0
    #: one ``{"epoch": e, "step": s}`` per resume: where the run continued from its checkpoint
    resumed_after: list[dict[str, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "git_commit"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """Tolerant of unknown keys (newer writers), missing ones (older or half-run folders) and
        containers of the wrong type (a hand-edited or foreign file): those are left at their default."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            default = f.default_factory() if callable(f.default_factory) else f.default
            if isinstance(default, (dict, RunIdentity)) and not isinstance(value, dict):
                continue
            if isinstance(default, list) and not isinstance(value, list):
                continue
            values[f.name] = value
        run = values.get("run")
        if isinstance(run, dict):
            run_known = {f.name for f in fields(RunIdentity)}
            values["run"] = RunIdentity(**{k: v for k, v in run.items() if k in run_known})
        return cls(**values)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def results(self, at: str, split: str) -> Metrics:
        """Metrics of ``split`` (val | test) at the ``last`` or ``best``-validation epoch (empty if none;
        entries that are not numbers are left out)."""
        table = (self.metrics.get(at) or {}).get(split) if isinstance(self.metrics.get(at), dict) else None
        out: Metrics = {}
        for task, values in (table or {}).items() if isinstance(table, dict) else ():
            if isinstance(values, dict):
                numbers = {str(m): x for m, v in values.items() if (x := number(v)) is not None}
                if numbers:
                    out[str(task)] = numbers
        return out

    def epoch(self, at: str) -> int | None:
        return (self.metrics.get(at) or {}).get("epoch")


@dataclass
class MetricRow:
    """One line of ``metrics.jsonl``."""

    epoch: int
    split: str  # train | val | test
    task: str | None  # None for run-wide values (extra losses, balancer statistics)
    metric: str
    value: float
    step: int | None = None
    checkpoint: str | None = None  # test rows: last | best

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"epoch": self.epoch}
        if self.step is not None:
            row["step"] = self.step
        row.update(split=self.split)
        if self.checkpoint is not None:
            row["checkpoint"] = self.checkpoint
        row.update(task=self.task, metric=self.metric, value=self.value)
        return row


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(object, None)`` or ``(None, why not)``, never an exception."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{path.name} missing"
    except UnicodeDecodeError:
        return None, f"{path.name} is not text (a foreign or corrupt file)"
    except ValueError:
        return None, f"{path.name} is not valid JSON (cut short or corrupt)"
    except OSError as ex:
        return None, f"{path.name} unreadable ({type(ex).__name__})"
    if not isinstance(data, dict):
        return None, f"{path.name} is not a JSON object"
    return data, None


class RunFolder:
    """One run folder: paths, the atomic writer of each file, and typed readers."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    def is_run(self) -> bool:
        """Hydra's job config, or a summary next to the run's log or metrics (a copy of a summary
        alone, such as a tracker's artifact, is not a run)."""
        if self.path(CONFIG).is_file():
            return True
        return self.path(SUMMARY).is_file() and any(self.path(n).is_file() for n in (METRICS, RUN_LOG))

    # -- summary.json --
    def write_summary(self, summary: Summary) -> None:
        write_json(self.path(SUMMARY), summary.to_dict())

    def read_summary(self) -> Summary | None:
        data, _ = read_json_object(self.path(SUMMARY))
        return Summary.from_dict(data) if data is not None else None

    def summary_or_reason(self) -> tuple[Summary | None, str | None]:
        data, problem = read_json_object(self.path(SUMMARY))
        return (Summary.from_dict(data), None) if data is not None else (None, problem)

    # -- .hydra/config.yaml --
    def read_config(self) -> dict[str, Any] | None:
        """The run's resolved config as plain data (``yaml.safe_load``), or None."""
        import yaml

        try:
            data = yaml.safe_load(self.path(CONFIG).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        return data if isinstance(data, dict) else None

    def read_choices(self) -> dict[str, str]:
        """The group choices Hydra recorded (``hydra.runtime.choices``), or {}."""
        import yaml

        try:
            data = yaml.safe_load(self.path(HYDRA_CONFIG).read_text(encoding="utf-8"))
            choices = data["hydra"]["runtime"]["choices"]
        except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
            return {}
        return {str(k): str(v) for k, v in (choices or {}).items() if v is not None}

    def read_hydra(self) -> dict[str, Any]:
        """Hydra's own settings of the run (``hydra:`` in ``.hydra/hydra.yaml``: mode, runtime...), or {}."""
        import yaml

        try:
            data = yaml.safe_load(self.path(HYDRA_CONFIG).read_text(encoding="utf-8"))["hydra"]
        except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
            return {}
        return data if isinstance(data, dict) else {}

    def read_launch(self) -> LaunchArguments:
        """What reproduces this run's composition on a command line (:class:`LaunchArguments`)."""
        hydra = self.read_hydra()

        def section(name: str) -> dict[str, Any]:
            value = hydra.get(name)
            return value if isinstance(value, dict) else {}

        runtime = section("runtime")
        flags: list[str] = []
        for source in runtime.get("config_sources") or []:
            if not isinstance(source, dict):
                continue
            where = str(source.get("path") or "")
            if source.get("provider") == "command-line" and source.get("schema") == "file":
                flags += ["--config-dir", where]
            elif source.get("provider") == "main" and where != PACKAGED_CONFIGS:
                flags += [
                    "--config-path",
                    where if source.get("schema") == "file" else f"{source.get('schema')}://{where}",
                ]
        job = section("job")
        if job.get("config_name") not in (None, PACKAGED_CONFIG_NAME):
            flags += ["--config-name", str(job["config_name"])]
        own = section("overrides")
        searchpath = [str(o) for o in own.get("hydra") or [] if _override_key(str(o)) == "hydra.searchpath"]
        task = [o for o in self.read_overrides() if _override_key(o) not in LAUNCH_ONLY_KEYS]
        return LaunchArguments(flags=flags, overrides=searchpath + task)

    def read_overrides(self) -> list[str]:
        """The command-line overrides of the run (``.hydra/overrides.yaml``), or []."""
        import yaml

        try:
            data = yaml.safe_load(self.path(OVERRIDES).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return []
        return [str(x) for x in data] if isinstance(data, list) else []

    # -- metrics.jsonl --
    def write_metrics(self, rows: list[MetricRow]) -> None:
        write_jsonl(self.path(METRICS), (r.to_dict() for r in rows))

    def read_metric_rows(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` as plain dicts, up to a half-written last line."""
        try:
            lines = self.path(METRICS).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return []
        rows = []
        for line in lines:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                break  # a half-written last line
        return rows

    # -- transfer.json, report.md, diagnostics.json --
    def write_transfer(self, report: TransferReport) -> None:
        write_json(self.path(TRANSFER), report.to_dict())

    def read_transfer(self) -> TransferReport | None:
        data = read_json_object(self.path(TRANSFER))[0]
        return TransferReport.from_dict(data) if data is not None else None

    def write_text(self, name: str, text: str) -> None:
        """A file the run keeps beside its results (a text dataset's ``tokenizer.json``)."""
        write_text(self.path(name), text)

    def write_report_markdown(self, text: str) -> None:
        write_text(self.path(REPORT_MD), text)

    def write_diagnostics(self, data: dict[str, Any]) -> None:
        write_json(self.path(DIAGNOSTICS), data)

    def read_diagnostics(self) -> dict[str, Any] | None:
        return read_json_object(self.path(DIAGNOSTICS))[0]
