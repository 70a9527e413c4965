"""Fuzzing of override values: any value of a typed option passes or gets one line naming the key
(the table of hand-picked cases is ``tests/test_bad_inputs.py``)."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

#: typed options whose values the fuzzer tries (a valid value passes, anything else is one line)
FUZZED = [
    "trainer.lr",
    "trainer.epochs",
    "trainer.batch_size",
    "trainer.weight_decay",
    "trainer.momentum",
    "trainer.grad_clip",
    "trainer.max_nan_skips",
    "trainer.optimizer",
    "trainer.on_nan",
    "report.alpha",
    "report.min_seeds",
    "seed",
]
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.sampled_from(["nan", "inf", "-inf", "true", "null", "[]", "{}", "''", "adam", "1e-3", "0x10", "1_000"]),
    st.text(alphabet="abcxyz019.-_ ", min_size=1, max_size=8).filter(lambda s: s.strip() == s),
)


@pytest.mark.slow
@hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(key=st.sampled_from(FUZZED), value=VALUES)
def test_fuzzed_option_values_pass_or_get_one_line(key: str, value: str):
    """Any value of a typed option either composes and validates, or is refused with one line naming the key."""
    from hydra import compose, initialize_config_module

    from mtlrun.cli.main import check_command_line, describe_error
    from mtlrun.config.schema import check_resolvable, validate
    from mtlrun.errors import ConfigError

    override = f"{key}={value}"
    try:
        check_command_line([override])
        with initialize_config_module(version_base="1.3", config_module="mtlrun.conf"):
            cfg = compose(config_name="config", overrides=[override])
        check_resolvable(cfg)
        validate(cfg)
    except ConfigError as ex:
        message = str(ex)
    except Exception as ex:  # Hydra's and OmegaConf's own errors, as the CLI prints them
        message = describe_error(ex)
    else:
        return
    assert "\n" not in message and "Traceback" not in message
    assert key.split(".")[-1] in message or override in message, message
