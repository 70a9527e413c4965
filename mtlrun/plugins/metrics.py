"""Your own metric in a task's ``metrics`` list: an import path or an installed entry point.

``dataset.tasks={y: {kind: binary, metrics: [auroc, my_pkg.metrics.Brier]}}``. The component is a
``torchmetrics.Metric`` subclass, or a function returning one, that declares its direction in
``higher_is_better`` (True or False: the best epoch, Δ and every report need it, so a metric
without one is refused). mtlrun builds a fresh one per split and evaluation; a constructor (or
function) parameter named ``num_classes`` (classification) or ``num_labels`` (multilabel)
receives the task's size, any other parameter needs a default. ``update(preds, target)`` sees
what the task's built-in metrics see (:meth:`mtlrun.data.base.TaskSpec.predictions`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mtlrun.errors import ConfigError
from mtlrun.plugins import entry_points
from mtlrun.plugins.schema import signature_target
from mtlrun.plugins.targets import import_object, is_import_path

#: the parameters through which a metric learns the task's size, per task kind
SIZE_PARAMETERS = {"classification": "num_classes", "multilabel": "num_labels"}


def is_user_metric(name: str) -> bool:
    """Whether a ``metrics`` entry names a user's metric (an import path or an installed one)."""
    return is_import_path(name) or entry_points.find("metric", name) is not None


def find_metric(name: str, key: str) -> tuple[Any, str]:
    """The metric object ``name`` refers to and how errors name it."""
    plugin = entry_points.find("metric", name)
    if plugin is not None:
        obj, where = entry_points.load(plugin), f"{key}: {name} ({plugin.origin})"
    else:
        obj, where = import_object(name, key), f"{key}: {name}"
    if not callable(obj):
        raise ConfigError(f"{where} is {type(obj).__name__}, not a torchmetrics.Metric subclass or a function")
    return obj, where


def user_metric(name: str, key: str, kind: str, size: int) -> tuple[Callable[[], Any], bool]:
    """``(factory, higher_is_better)`` for the user's metric ``name`` of a task of ``kind`` with
    ``size`` classes or labels; a one-line ConfigError naming ``key`` (``dataset.tasks.y.metrics``)."""
    obj, where = find_metric(name, key)
    kwargs = _arguments(obj, where, kind, size)
    if inspect.isclass(obj):
        higher = _declared_direction(obj, where)
    else:
        from torchmetrics import Metric

        sample = obj(**kwargs)
        if not isinstance(sample, Metric):
            raise ConfigError(f"{where} returned {type(sample).__name__}, not a torchmetrics.Metric")
        higher = _declared_direction(type(sample), where, getattr(sample, "higher_is_better", None))
    return (lambda: obj(**kwargs)), higher


def check_user_metric(name: str, key: str) -> None:
    """Before the run: ``name`` imports and is a Metric subclass that declares its direction, or a
    function (whose result is checked when the task is built)."""
    obj, where = find_metric(name, key)
    if inspect.isclass(obj):
        _declared_direction(obj, where)


def _declared_direction(cls: Any, where: str, value: Any = None) -> bool:
    from torchmetrics import Metric

    if not issubclass(cls, Metric):
        raise ConfigError(f"{where} is not a torchmetrics.Metric subclass (or a function returning one)")
    higher = getattr(cls, "higher_is_better", None) if value is None else value
    if not isinstance(higher, bool):
        raise ConfigError(
            f"{where} declares no direction (higher_is_better={higher!r}); set the class attribute "
            "higher_is_better = True or False"
        )
    return higher


def _arguments(obj: Any, where: str, kind: str, size: int) -> dict[str, Any]:
    try:
        params = inspect.signature(signature_target(obj)).parameters
    except (TypeError, ValueError):
        return {}
    given = SIZE_PARAMETERS.get(kind)
    kwargs = {given: size} if given in params else {}
    needed = [
        n
        for n, p in params.items()
        if n != "self"
        and n not in kwargs
        and p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if needed:
        raise ConfigError(
            f"{where} needs {', '.join(needed)}, which mtlrun cannot give: give them defaults "
            f"(mtlrun passes only {' / '.join(SIZE_PARAMETERS.values())} for classification / multilabel tasks)"
        )
    return kwargs
