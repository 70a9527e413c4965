"""``logger=csv``: spreadsheet-friendly copies of a run's scalars and its config.

``<dir>/metrics.csv`` has one row per logging call (each epoch, then each test evaluation) and
one column per scalar name, like Lightning's CSVLogger; columns that appear later (a balancer
statistic, the test metrics) extend the header, so the file is rewritten, atomically, each time.
``<dir>/config.yaml`` holds the resolved config.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import yaml

from mtlrun.errors import ConfigError
from mtlrun.loggers.base import LOGGERS, RunLogger, check_writable_folder
from mtlrun.results.atomic import write_text


@LOGGERS.register("csv")
class CsvLogger(RunLogger):
    """Writes ``metrics.csv`` and ``config.yaml`` into ``dir`` (default: ``<run folder>/csv``)."""

    def __init__(self, output_dir: Path, run_name: str, dir: Optional[str] = None) -> None:
        super().__init__(output_dir, run_name)
        self.dir = Path(dir) / run_name if dir else self.output_dir / "csv"
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, Any]] = []
        self.key = "logger.dir" if dir else "hydra.run.dir"

    @classmethod
    def preflight(cls, options: Mapping[str, Any]) -> None:
        if options.get("dir"):
            check_writable_folder(Path(str(options["dir"])), "logger.dir")

    def start(self) -> None:
        """Create the folder and make sure files can be written into it."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as ex:
            key, reason = self.key, ex.strerror or ex
            raise ConfigError(f"{key}: {self.dir} cannot be created ({reason}); choose another {key}") from None
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise ConfigError(f"{self.key}: {self.dir} is not writable; choose another {self.key}")

    def log_config(self, config: Mapping[str, Any]) -> None:
        write_text(self.dir / "config.yaml", yaml.safe_dump(dict(config), sort_keys=False))

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        for name in scalars:
            if name not in self.columns:
                self.columns.append(name)
        self.rows.append({"step": step, **{k: v if math.isfinite(v) else str(v) for k, v in scalars.items()}})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.dir / "metrics.csv", buffer.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "rows": [dict(r) for r in self.rows]}

    def resume(self, state: dict[str, Any]) -> None:
        """The rows up to the checkpoint; ``metrics.csv`` is rewritten with the next row."""
        self.columns = list(state.get("columns", ["step"]))
        self.rows = [dict(r) for r in state.get("rows", [])]

    def close(self, status: str) -> None:
        write_text(self.dir / "status.txt", status + "\n")
