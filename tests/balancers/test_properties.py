"""Properties every registered balancer must have: ``mtlrun.testing.check_balancer`` applied to each.

Each test is parametrised over ``BALANCERS.names()`` and the properties, so a new method is checked
without being named here. A method is excused from a property only where its definition breaks it;
the reason is given, and passed to ``check_balancer`` as an argument.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from mtlrun.balancers import BALANCERS
from mtlrun.testing import PROPERTIES, check_balancer
from mtlrun.testing.toys import TASKS, Setup, TinyModel

NAMES = BALANCERS.names()

#: options that keep every method quick on the toy (fewer inner iterations; stch past its warm-up)
OPTIONS: dict[str, dict] = {
    "forum": {"inner_steps": 1},
    "sdmgrad": {"niter": 3},
    "stch": {"warmup_epochs": 0},
}

#: methods whose decision depends on the order of the tasks by definition
ORDER_DEPENDENT = {
    "pcgrad": "projects onto the other tasks in a random order",
    "gradvac": "visits the other tasks in a random order",
    "rlw": "draws its weights position by position",
}

#: methods whose update is not a combination of the step's own task gradients
NOT_A_COMBINATION = {
    "forum": "steps along the upper-level gradients of another batch",
}

#: state (buffer or parameter names) indexed by task, per stateful method: along dimension 0 unless given
TASK_STATE: dict[str, Any] = {
    "auto_lambda": ["lam", "lam_exp_avg", "lam_exp_avg_sq"],
    "cr_mogm": ["smoothed"],
    "db_mtl": ["grad_ema"],
    "dwa": {"epoch_averages": 1},
    "excess_mtl": ["loss_weights", "initial_excess", "grad_sq_sum"],
    "famo": ["logits", "optimizer.exp_avg", "optimizer.exp_avg_sq", "previous_losses"],
    "forum": ["logits", "logits_exp_avg"],
    "go4align": ["alignment"],
    "gradnorm": ["task_weights", "initial_losses", "optimizer.exp_avg"],
    "gradvac": {"targets": (0, 1)},
    "imtl": ["log_scales"],
    "ldc_mtl": ["logits", "initial_losses"],
    "moco": ["tracked", "lambd"],
    "moml": ["logits", "logits_exp_avg"],
    "stch": ["nadir"],
    "uw": ["log_variances"],
}

#: any other exclusion: {method: {property: reason}}
SKIP: dict[str, dict[str, str]] = {}


def factory(name: str):
    if name == "torchjd" and importlib.util.find_spec("torchjd") is None:
        pytest.skip("torchjd is not installed (pip install 'mtlrun[torchjd]')")
    return BALANCERS.get(name)


def exclusions(name: str) -> dict[str, Any]:
    return {
        "order_dependent": ORDER_DEPENDENT.get(name),
        "not_a_combination": NOT_A_COMBINATION.get(name),
        "task_state": TASK_STATE.get(name),
        "skip": SKIP.get(name),
    }


@pytest.mark.parametrize("prop", list(PROPERTIES))
@pytest.mark.parametrize("name", NAMES)
def test_every_balancer_has_every_property(name, prop):
    report = check_balancer(factory(name), options=OPTIONS.get(name), **exclusions(name), properties=[prop])
    if prop in report.skipped:
        pytest.skip(report.skipped[prop])
    assert report.checked == [prop]


#: option sets with code paths of their own (cached weights, the representation, other closures),
#: each with what its definition changes in the exclusions
VARIANTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("mgda", {"update_every": 2}, {}),
    ("excess_mtl", {"update_every": 2}, {}),
    ("nash_mtl", {"update_every": 2}, {}),
    ("nash_mtl", {"rep_grad": True}, {}),
    ("pcgrad", {"rep_grad": True}, {}),
    ("excess_mtl", {"rep_grad": True}, {}),
    ("gradnorm", {"rep_grad": True}, {}),
    ("imtl", {"mode": "gradient", "rep_grad": True}, {"task_state": None}),  # IMTL-G has no loss scales
    (
        "imtl",
        {"mode": "loss"},
        {
            "skip": {
                "absent_task": "IMTL-L is a loss weighting: its weights are the loss scales, an absent task's unmoved"
            }
        },
    ),
    (
        "famo",
        {"xi_update": "same_batch"},
        {"skip": {"state_round_trip": "same_batch does not checkpoint the batch: a resume skips its first update"}},
    ),
    ("cr_mogm", {"base": "nash_mtl", "update_every": 2}, {}),
    ("cr_mogm", {"rep_grad": True}, {}),
    ("auto_lambda", {"upper_split": "train"}, {}),
    ("moml", {"upper_split": "train"}, {}),
    ("forum", {"upper_split": "val"}, {}),
]


@pytest.mark.parametrize(
    ("name", "options", "changes"),
    VARIANTS,
    ids=[f"{n}-{','.join(f'{k}={v}' for k, v in o.items())}" for n, o, _ in VARIANTS],
)
def test_variants_have_every_property(name, options, changes):
    arguments = {**exclusions(name), **changes}
    if "skip" in changes:
        arguments["skip"] = {**(SKIP.get(name) or {}), **changes["skip"]}
    report = check_balancer(factory(name), options={**OPTIONS.get(name, {}), **options}, **arguments)
    assert "honest_jacobian" in report.checked and "plain_loop" in report.checked


@pytest.mark.parametrize("name", ["mgda", "excess_mtl"])
def test_cached_weights_are_reused_between_recomputations(name):
    balancer = BALANCERS.build(name, {"update_every": 2}, tasks=TASKS).double()
    setup = Setup(balancer, TinyModel(TASKS))
    for step in range(3):
        setup.step(step)
        setup.sgd()
    assert not balancer.returns_jacobian(1) and balancer.returns_jacobian(2)
