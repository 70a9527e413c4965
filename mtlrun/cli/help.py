"""``mtlrun --help``: every config group, its choices and a one-line description of each.

The description is the first sentence of the comment at the top of the choice's YAML file (whole,
however many lines it spans), and a dataset's ``# Tasks:`` line names its tasks, so adding a method
(one module plus one YAML) documents itself here. Reads the packaged configs only; no torch import.
"""

from __future__ import annotations

from importlib import resources

from mtlrun.results.versions import __version__

GROUPS = {
    "dataset": "what to train on",
    "tasks": "which of the dataset's tasks form the task set",
    "encoder": "the feature extractor the architecture is built from",
    "arch": "how the tasks share parameters",
    "balancer": "how the task losses or gradients are combined",
    "schedule": "when each task enters training (loss multipliers per epoch)",
    "trainer": "optimisation, evaluation and device",
    "logger": "an experiment tracker mirroring the run folder",
    "experiment": "named, reproducible presets, values only (conf/experiment/; results in experiments/)",
    "sweep": "the sweeps and searches of the presets: mtlrun -m sweep=NAME (conf/sweep/)",
}

EXAMPLES = """\
Examples:
  mtlrun                                        the default experiment (multi_digits, hps, ew)
  mtlrun arch=hps balancer=fixed 'tasks.weights={left:1,sum:0.1}'
  mtlrun dataset=synthetic dataset.correlation=0.5 trainer.epochs=2
  mtlrun tasks=digits_left_right trainer.lr=3e-4 seed=1
  mtlrun 'tasks.names=[left,parity]' encoder=mlp 'encoder.hidden=[256,128]'
  mtlrun -m seed=0,1,2                          a sweep (multirun/DATE/TIME/N/)
  mtlrun resume=outputs/DATE/TIME               continue a killed or interrupted run (or sweep) in place
  mtlrun-compare multirun/DATE/TIME            compare runs: one row per configuration, seeds pooled
  mtlrun --cfg job                              print the composed config and exit
Set HYDRA_FULL_ERROR=1 for full tracebacks; --hydra-help lists Hydra's own flags."""


#: words whose trailing period does not end a sentence
ABBREVIATIONS = ("e.g.", "i.e.", "al.", "vs.", "cf.", "etc.")


def _header(text: str) -> tuple[list[str], str]:
    """The description paragraph (the leading comment lines) and the ``# Tasks:`` line of a YAML.

    The paragraph ends at the first non-comment, empty-comment or indented-comment line (option
    lists, commands) and at ``Options``/``Tasks:`` lines.
    """
    paragraph: list[str] = []
    tasks = ""
    ended = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        if stripped.startswith("# @package"):
            continue
        body = stripped[1:]
        content = body.strip()
        if content.startswith("Tasks:"):
            tasks = content[len("Tasks:") :].strip()
            ended = True
        elif not content or body.startswith("  ") or content.startswith("Options"):
            ended = True
        elif not ended:
            paragraph.append(content)
    return paragraph, tasks


def first_sentence(text: str) -> str:
    """``text`` up to the end of its first sentence (a period, ! or ? before a space or the end)."""
    words = text.split()
    for i, word in enumerate(words):
        if word.endswith((".", "!", "?")) and not word.lower().endswith(ABBREVIATIONS):
            return " ".join(words[: i + 1])
    return " ".join(words)


def _description(text: str) -> str:
    return first_sentence(" ".join(_header(text)[0]))


def _yaml_files(group: str) -> list:
    folder = resources.files("mtlrun.conf").joinpath(group)
    if not folder.is_dir():
        return []
    return [e for e in sorted(folder.iterdir(), key=lambda e: e.name) if e.name.endswith(".yaml")]


def group_choices(group: str) -> dict[str, str]:
    """``{choice: description}`` for a packaged config group: the first sentence of its YAML's header."""
    return {
        entry.name[: -len(".yaml")]: _description(entry.read_text(encoding="utf-8")) for entry in _yaml_files(group)
    }


def dataset_tasks() -> dict[str, str]:
    """``{dataset: its tasks}`` from the ``# Tasks:`` line of each dataset YAML."""
    return {
        entry.name[: -len(".yaml")]: _header(entry.read_text(encoding="utf-8"))[1] for entry in _yaml_files("dataset")
    }


def plugin_choices(group: str, builtins: dict[str, str]) -> dict[str, str]:
    """``{name: description}`` of the installed plugins of ``group`` (entry points, docs/plugins.md),
    described from their source without importing them; a plugin that cannot be loaded says why."""
    from mtlrun.plugins.entry_points import describe, installed
    from mtlrun.plugins.families import FAMILIES

    if group not in FAMILIES:
        return {}
    found = {}
    for name, plugins in sorted(installed(group).items()):
        origin = ", ".join(sorted({p.distribution for p in plugins}))
        if name in builtins:
            found[f"{name} "] = f"(a plugin of {origin}, hidden by the built-in {name})"
        elif len(plugins) > 1:
            found[name] = f"(declared by more than one package: {origin}; choosing it is an error)"
        else:
            desc = first_sentence(describe(plugins[0]))
            found[name] = f"{desc} [plugin: {origin}]" if desc else f"[plugin: {origin}, {plugins[0].value}]"
    return found


def render_help() -> str:
    lines = [
        f"mtlrun {__version__}: train multi-task models and learn, per task, whether sharing helped.",
        "",
        "Usage: mtlrun [GROUP=CHOICE] [KEY=VALUE ...] [-m] [--cfg job] [--help]",
        "",
        "Config groups (defaults: dataset=multi_digits tasks=all encoder=auto arch=hps balancer=ew):",
    ]
    for group, what in GROUPS.items():
        choices = group_choices(group)
        if not choices:
            continue
        plugins = plugin_choices(group, choices)
        lines.append(f"  {group}: {what}")
        width = max(len(c) for c in [*choices, *plugins])
        tasks = dataset_tasks() if group == "dataset" else {}
        for name, desc in {**choices, **plugins}.items():
            lines.append(f"    {name.ljust(width)}  {desc}")
            if tasks.get(name):
                lines.append(f"    {' ' * width}  tasks: {tasks[name]}")
    metrics = plugin_choices("metric", {})
    if metrics:
        lines.append("  metrics of installed plugins, for a task's metrics list (dataset.tasks.T.metrics):")
        width = max(map(len, metrics))
        lines += [f"    {name.ljust(width)}  {desc}" for name, desc in metrics.items()]
    lines += [
        "",
        "Top-level keys:",
        "  seed                 the run's seed (the dataset's split has its own, dataset.seed)",
        "  trainer.*            epochs, batch_size, optimizer, lr, grad_clip, device, on_nan (stop | skip),",
        "                       precision, compile, threads, scheduler, early_stopping.patience, ... (README: Trainer)",
        "  report.*             baselines (true | false | only_cached), cache_dir, alpha, correction, min_seeds,",
        "                       pool, pool_from, groups, batched",
        "  diagnostics.*        every (steps between samples; 0 = off), affinity (true | false)",
        "Every option's type, default and range: docs/options.md; `mtlrun --cfg job` prints each range as a",
        "comment (lr: 0.001  # > 0), and a value outside it is refused before the run or sweep starts.",
        "",
        EXAMPLES,
    ]
    return "\n".join(lines)
