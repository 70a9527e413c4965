"""``logger=tensorboard``: event files for ``tensorboard --logdir``, one sub-folder per run.

Needs the ``tensorboard`` package (``pip install 'mtlrun[tensorboard]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import yaml

from mtlrun.errors import ConfigError
from mtlrun.loggers.base import LOGGERS, RunLogger, check_writable_folder


@LOGGERS.register("tensorboard")
class TensorBoardLogger(RunLogger):
    """Scalars and the resolved config (a text summary) into ``log_dir``.

    ``log_dir`` null: ``<run folder>/tensorboard``; otherwise ``<log_dir>/<run name>``, so one
    ``tensorboard --logdir LOG_DIR`` shows every run of a sweep side by side.
    """

    def __init__(self, output_dir: Path, run_name: str, log_dir: Optional[str] = None, flush_secs: int = 30) -> None:
        super().__init__(output_dir, run_name)
        if flush_secs < 1:
            raise ConfigError(f"logger.flush_secs={flush_secs} must be >= 1")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as ex:
            raise ConfigError(
                "logger=tensorboard needs the tensorboard package: pip install 'mtlrun[tensorboard]'"
            ) from ex
        self.log_dir = Path(log_dir) / run_name if log_dir else self.output_dir / "tensorboard"
        self.flush_secs = flush_secs
        key = "logger.log_dir" if log_dir else "hydra.run.dir"
        try:
            self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)
        except OSError as ex:
            reason = ex.strerror or ex
            raise ConfigError(f"{key}: {self.log_dir} cannot be created ({reason}); choose another {key}") from None
        self.last_step = 0

    @classmethod
    def preflight(cls, options: Mapping[str, Any]) -> None:
        flush_secs = options.get("flush_secs", 30)
        if isinstance(flush_secs, int) and flush_secs < 1:
            raise ConfigError(f"logger.flush_secs={flush_secs} must be >= 1")
        if options.get("log_dir"):
            check_writable_folder(Path(str(options["log_dir"])), "logger.log_dir")

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.last_step}

    def resume(self, state: dict[str, Any]) -> None:
        """Reopen the event files, purging events logged after the checkpoint's step."""
        from torch.utils.tensorboard import SummaryWriter

        self.last_step = int(state.get("step", 0))
        self.writer.close()
        self.writer = SummaryWriter(
            log_dir=str(self.log_dir), flush_secs=self.flush_secs, purge_step=self.last_step + 1
        )

    def log_config(self, config: Mapping[str, Any]) -> None:
        text = yaml.safe_dump(dict(config), sort_keys=False)
        self.writer.add_text("config", "```yaml\n" + text + "```", global_step=0)

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, global_step=step)
        self.last_step = max(self.last_step, step)

    def close(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.flush()
        self.writer.close()
