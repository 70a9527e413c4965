"""The default run through the real entry point."""

from tests.conftest import TINY


def test_default_run_completes(cli):
    result = cli(*TINY)
    assert result.code == 0, result.err
    summary = result.summary()
    assert summary["status"] == "completed"
    assert set(summary["metrics"]["last"]["test"]) == {"left", "right", "sum", "parity"}
