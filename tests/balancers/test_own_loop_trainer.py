"""A training loop of one's own with ``mtlrun.balancers`` takes the trainer's steps.

mtlrun's Trainer (MultiDigits, an MLP encoder, hps) takes a few steps; a plain PyTorch loop of
about twenty lines takes the same steps on a copy of the initial model, with ``torch.optim.Adam``
and the balancer class imported by name and built without tasks. Randomness (PCGrad's order, RLW's
weights, GradDrop's signs) is seeded identically before each step.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch.func import functional_call

import mtlrun.balancers
from mtlrun.balancers import BALANCERS
from tests.train.trainer_toys import small_trainer

#: options that keep the slow methods quick (as in the property suite)
FAST = {"forum": {"inner_steps": 1}, "sdmgrad": {"niter": 3}, "stch": {"warmup_epochs": 0}}
CASES = [(name, FAST.get(name, {})) for name in BALANCERS.names() if name != "torchjd"] + [
    ("mgda", {"rep_grad": True}),
    ("nash_mtl", {"update_every": 2}),
    ("gradnorm", {"rep_grad": True}),
    ("famo", {"xi_update": "same_batch"}),
    ("auto_lambda", {"upper_split": "train"}),
]
STEPS = 3


def plain_loop(model, balancer, groups, loss_fns, lr, val_batches, seeds, task_params=None):
    """A loop of one's own: forward, balancer.backward with keywords, torch.optim.Adam."""
    optimizer = torch.optim.Adam([*model.parameters(), *balancer.parameters()], lr=lr)

    def losses_of(outputs, targets):
        return {t: fn(outputs[t], targets[t]) for t, fn in loss_fns.items()}

    for seed, (batch, *extra) in zip(seeds, groups):
        x, targets = batch
        optimizer.zero_grad()
        torch.manual_seed(seed)
        z = model.encode(x) if balancer.needs_representation else None
        outputs = model.decode(z) if z is not None else model(x)
        balancer.backward(
            losses_of(outputs, targets),
            shared_params=model.shared_parameters(),
            task_params=task_params,
            model=model,
            representation=z,
            epoch=1,
            lr=lr,
            batch=batch,
            extra_batches=extra,
            compute_losses=lambda b: losses_of(model(b[0]), b[1]),
            validation_batch=lambda: next(val_batches),
            functional_losses=lambda params, b: losses_of(functional_call(model, params, (b[0],)), b[1]),
        )
        optimizer.step()


def trainer_and_plain_loop(name, options, task_params=None):
    trainer = small_trainer(lambda tasks: BALANCERS.build(name, options, tasks=tasks))
    model = copy.deepcopy(trainer.model)
    per_step = max(1, trainer.balancer.batches_per_step)
    order = torch.Generator().manual_seed(123)
    batches = list(itertools.islice(trainer.data.train.batches(64, shuffle=True, generator=order), STEPS * per_step))
    groups = [batches[i * per_step : (i + 1) * per_step] for i in range(STEPS)]
    seeds = [1000 + i for i in range(STEPS)]
    lr = trainer.optimizer.param_groups[0]["lr"]
    for seed, group in zip(seeds, groups):
        torch.manual_seed(seed)
        trainer.training_step(group, epoch=1, lr=lr)
    balancer = getattr(mtlrun.balancers, type(trainer.balancer).__name__)(**options)
    # the trainer's validation batches, in its own seeded order (seed + 1)
    val_batches = trainer.data.val.batches(trainer.batch_size, shuffle=True, generator=torch.Generator().manual_seed(1))
    loss_fns = {t: trainer.data.tasks[t].loss for t in trainer.tasks}
    params = None if task_params is None else task_params(model)
    plain_loop(model, balancer, groups, loss_fns, lr, val_batches, seeds, params)
    return trainer, model, balancer


@pytest.mark.parametrize(
    ("name", "options"), CASES, ids=[f"{n}{''.join(f'-{k}={v}' for k, v in o.items())}" for n, o in CASES]
)
def test_a_plain_loop_takes_the_trainers_steps(name, options):
    trainer, model, balancer = trainer_and_plain_loop(name, options)
    assert balancer.tasks == trainer.tasks
    for (key, want), (_, got) in zip(trainer.model.named_parameters(), model.named_parameters()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")
    for (key, want), (_, got) in zip(trainer.balancer.named_parameters(), balancer.named_parameters()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")
    assert trainer.balancer.state_dict().keys() == balancer.state_dict().keys()


@pytest.mark.parametrize("name", ["pcgrad", "excess_mtl"])  # plain and weighted head gradients
def test_given_task_parameters_take_the_same_steps_as_inferred_ones(name):
    trainer, model, _ = trainer_and_plain_loop(
        name, {}, task_params=lambda m: {t: m.task_parameters(t) for t in m.task_names}
    )
    for want, got in zip(trainer.model.parameters(), model.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
