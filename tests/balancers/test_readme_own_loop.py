"""The README's "mtlrun's balancers in your own loop" examples, executed as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
TITLE = "mtlrun's balancers in your own loop"


def python_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {TITLE}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_readme_examples_run_as_written(capsys):
    blocks = python_blocks()
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md:{TITLE}:{i}", "exec"), {"__name__": f"readme_own_loop_{i}"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("['a', 'b'] tensor([")
    assert printed[1].startswith("MeanGradient: 7 properties hold")
    assert printed[2] == (
        "InverseLossAverage: 8 properties hold (permutation, equal_gradients, finite_gradients, "
        "state_round_trip, honest_jacobian, absent_task, absent_task_state, plain_loop)"
    )
