"""The README's "Your own data" examples, executed as written.

The test writes the data files the examples reference (a penguins-shaped CSV, a folder of PNGs
with its labels table), writes every code block that starts with ``# file: PATH`` to PATH, and
runs every ``mtlrun`` command of the section's bash blocks through the real entry point, adding
only overrides that make it fast (one epoch, no diagnostics, no baselines; plots skipped).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.data.owndata_files import write_penguins
from tests.test_text_cli import write_texts

README = Path(__file__).resolve().parents[2] / "README.md"
FAST = ["trainer.epochs=1", "trainer.batch_size=64", "diagnostics.every=0", "report.baselines=false"]


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def code_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", text, flags=re.S)]


def commands(script: str) -> list[list[str]]:
    joined = script.replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in joined.splitlines() if line.strip().startswith("mtlrun ")]


def write_photos(root: Path, n: int = 30, size: int = 20) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir()
    rows = []
    for i in range(n):
        age = float(rng.uniform(10, 80))
        smiling, glasses = int(rng.integers(0, 2)), int(rng.integers(0, 2))
        pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
        pixels[: size // 2, :, 0] = int(age * 3)
        name = f"img_{i:04d}.png"
        Image.fromarray(pixels, "RGB").save(root / name)
        rows.append({"file": name, "age": age, "smiling": smiling, "glasses": glasses if i % 7 else None})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)


def test_every_example_of_the_your_own_data_section_runs(cli, tmp_path, monkeypatch):
    text = section(README.read_text(encoding="utf-8"), "Your own data")
    blocks = code_blocks(text)
    written = []
    for _, body in blocks:
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            path = tmp_path / first[len("# file: ") :].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            written.append(path.relative_to(tmp_path).as_posix())
    assert written == ["conf/dataset/my_penguins.yaml", "my_pkg/my_module.py", "conf/dataset/mine.yaml"]
    runs = [args for lang, body in blocks if lang == "bash" for args in commands(body)]
    assert len(runs) == 6
    write_penguins(tmp_path / "penguins.csv", n=120)
    write_texts(tmp_path / "reviews.csv", n=60)
    write_photos(tmp_path / "photos", n=60)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the launch folder is added for _target_ imports
    monkeypatch.setattr("mtlrun.report.plots.plot_run", lambda folder: None)  # plots are tested elsewhere
    try:
        datasets, tasks = [], []
        for args in runs:
            result = cli(*args, *FAST)
            assert result.code == 0, (args, result.err)
            summary = result.summary()
            assert summary["status"] == "completed", args
            datasets.append(summary["run"]["dataset"])
            tasks.append(summary["run"]["tasks"])
    finally:
        for name in ("my_pkg.my_module", "my_pkg"):
            sys.modules.pop(name, None)
    assert datasets == ["table", "table", "image_folder", "text", "python", "my_pkg.my_module.build"]
    assert tasks[1] == ["species", "sex"]  # tasks.names narrows the declared tasks
