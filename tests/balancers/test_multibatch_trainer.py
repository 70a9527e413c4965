"""The trainer's side of the multi-batch and bilevel contract: batches per step and the closures it provides."""

from __future__ import annotations

import torch

from mtlrun.balancers.weighting import EqualWeighting
from tests.train.trainer_toys import small_trainer


class TwoBatchRecorder(EqualWeighting):
    """Equal weighting that declares two batches per step and records what each step received."""

    batches_per_step = 2

    def __init__(self, tasks):
        super().__init__(tasks)
        self.seen: list[tuple[torch.Tensor, list[torch.Tensor]]] = []

    def backward(self, losses, ctx):
        self.seen.append((ctx.batch[0], [b[0] for b in ctx.extra_batches]))
        return super().backward(losses, ctx)


def test_two_batches_per_step_halve_the_steps_of_an_epoch():
    trainer = small_trainer(TwoBatchRecorder, epochs=1)
    result = trainer.fit()
    num_batches = trainer.data.train.num_batches(trainer.batch_size)
    assert num_batches >= 4
    assert result.steps == num_batches // 2
    seen = trainer.balancer.seen
    assert len(seen) == result.steps and all(len(extra) == 1 for _, extra in seen)
    rows = torch.cat([torch.cat([own.flatten(1), extra[0].flatten(1)]) for own, extra in seen])
    n, bs = len(trainer.data.train), trainer.batch_size
    assert rows.shape[0] == sum(min(bs, n - i * bs) for i in range(2 * result.steps))
    if num_batches % 2 == 0:  # then the epoch consumed every training example exactly once
        train = trainer.data.train.x.flatten(1)
        assert torch.equal(torch.sort(rows, dim=0).values, torch.sort(train, dim=0).values)
    first, extra = seen[0][0], seen[0][1][0]
    assert not torch.equal(first, extra)


def test_validation_batches_cycle_through_the_validation_split():
    trainer = small_trainer(EqualWeighting)
    val = trainer.data.val.x.flatten(1)
    passes = trainer.data.val.num_batches(trainer.batch_size)
    drawn = torch.cat([trainer.validation_batch()[0].flatten(1) for _ in range(passes)])
    assert drawn.shape == val.shape
    # one pass is a permutation of the validation split
    assert torch.equal(torch.sort(drawn, dim=0).values, torch.sort(val, dim=0).values)
    assert trainer.validation_batch()[0].shape[0] == trainer.batch_size  # then it starts over


def test_functional_losses_match_the_model_and_differentiate_the_given_parameters():
    trainer = small_trainer(EqualWeighting)
    batch = next(trainer.data.train.batches(trainer.batch_size))
    params = {n: p.detach().clone().requires_grad_(True) for n, p in trainer.model.named_parameters()}
    functional = trainer.functional_losses(params, batch)
    direct = trainer.compute_losses(batch)
    for task in trainer.tasks:
        torch.testing.assert_close(functional[task], direct[task])
    total = sum(functional.values())
    grads = torch.autograd.grad(total, list(params.values()), allow_unused=True)
    assert all(g is not None for g in grads)
    assert all(p.grad is None for p in trainer.model.parameters())  # the model's own parameters are untouched
