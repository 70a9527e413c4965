"""A script preset's YAML with ``key=value`` overrides (the experiments' scripts, outside Hydra)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtlrun.errors import ConfigError


def merged_preset(preset: Path, overrides: Sequence[str], keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The preset merged with ``overrides`` as plain data; a malformed override or a key outside
    ``keys`` (default: the preset's own) is one ``ConfigError`` line naming the valid keys."""
    cfg = OmegaConf.load(preset)
    try:
        extra = OmegaConf.from_dotlist(list(overrides))
    except Exception as ex:  # omegaconf's grammar errors
        raise ConfigError(f"bad override among {' '.join(overrides)}: {str(ex).splitlines()[0]}") from None
    valid = [str(k) for k in (cfg if keys is None else keys)]
    for key in extra:
        if key not in valid:
            raise ConfigError(f"unknown key '{key}'; valid keys: {', '.join(valid)}")
    merged = OmegaConf.merge(cfg, extra)
    assert isinstance(merged, DictConfig)
    raw = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(raw, dict)
    return raw
