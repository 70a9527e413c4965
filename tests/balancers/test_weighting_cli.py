"""Configuration errors of the adaptive loss-weighting balancers: one line each, also through the CLI."""

from __future__ import annotations

import pytest

from mtlrun.balancers import BALANCERS
from mtlrun.errors import ConfigError
from tests.conftest import TINY

TASKS = ["left", "right", "sum", "parity"]
#: no single-task baselines: these runs test the balancers, not the report
FAST = [*TINY, "report.baselines=false"]

BAD = [
    ("dwa", {"temperature": -1}, "balancer.temperature=-1 must be > 0"),
    ("rlw", {"concentration": 0.0}, "balancer.concentration=0.0 must be > 0"),
    ("rlw", {"distribution": "uniform"}, "balancer.distribution='uniform' has the wrong type"),
    ("famo", {"w_lr": 0.0}, "balancer.w_lr=0.0 must be > 0"),
    ("famo", {"gamma": -0.1}, "balancer.gamma=-0.1 must be >= 0"),
    ("famo", {"min_losses": [0.0]}, "balancer.min_losses has 1 values but the run has 4 tasks"),
    ("famo", {"xi_update": "later"}, "balancer.xi_update='later' has the wrong type"),
    ("db_mtl", {"beta": 1.5}, "balancer.beta=1.5 must be in [0, 1]"),
    ("db_mtl", {"beta_sigma": -1.0}, "balancer.beta_sigma=-1.0 must be >= 0"),
    ("db_mtl", {"jacobian_mode": "fast"}, "balancer.jacobian_mode='fast' has the wrong type"),
    ("stch", {"mu": 0.0}, "balancer.mu=0.0 must be > 0"),
    ("stch", {"warmup_epochs": -1}, "balancer.warmup_epochs=-1 must be >= 0"),
    ("excess_mtl", {"robust_step_size": -0.1}, "balancer.robust_step_size=-0.1 must be > 0"),
    ("excess_mtl", {"update_every": 0}, "balancer.update_every=0 must be >= 1"),
    ("gradnorm", {"alpha": -1.0}, "balancer.alpha=-1.0 must be >= 0"),
    ("gradnorm", {"lr": 0.0}, "balancer.lr=0.0 must be > 0"),
    ("gradnorm", {"update_every": 0}, "balancer.update_every=0 must be >= 1"),
    ("uw", {"init_log_variance": float("nan")}, "balancer.init_log_variance=nan must be a finite number"),
    ("gls", {"alpha": 1.0}, "unknown key 'balancer.alpha'"),
]


@pytest.mark.parametrize(("name", "options", "message"), BAD, ids=[f"{n}-{next(iter(o))}" for n, o, _ in BAD])
def test_bad_option_is_a_one_line_config_error(name, options, message):
    with pytest.raises(ConfigError) as error:
        BALANCERS.build(name, options, tasks=TASKS)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_option_on_the_command_line_exits_2_with_one_line(cli):
    result = cli("balancer=dwa", "balancer.temperature=-1", *FAST)
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "balancer.temperature=-1.0 must be > 0" in lines[0]
