"""arch=learn_to_branch (Guo et al., ICML 2020): the search, the fixed tree, its round trip into
arch=branched, and checkpoint/resume across the switch."""

from __future__ import annotations

import io
import json
import signal
from dataclasses import asdict

import pytest
import torch

from mtlrun.balancers import BALANCERS
from mtlrun.data import DATASETS
from mtlrun.data.tasks import regression_task
from mtlrun.errors import ConfigError
from mtlrun.models import ARCHS, EncoderSpec
from mtlrun.models.arch.branched import Branched
from mtlrun.models.arch.learn_to_branch import LearnToBranch, branch_points
from mtlrun.train.loop import Trainer, param_groups
from mtlrun.train.optimizers import build_optimizer
from mtlrun.train.signals import Interrupted
from tests.models.helpers import batch, build, encoder, losses, tasks
from tests.models.test_partition import check_partition


def choose(model: LearnToBranch, stage_parents: dict[int, list[int]], head_parents: list[int]) -> None:
    """Make these parents the most probable ones, then fix the tree."""
    with torch.no_grad():
        for s, parents in stage_parents.items():
            logits = model.stage_logits[str(s)]
            logits.zero_()
            logits[torch.arange(len(parents)), torch.tensor(parents)] = 3.0
        for t, parent in zip(model.task_names, head_parents):
            model.head_logits[t].zero_()
            model.head_logits[t][parent] = 3.0
    model.on_epoch_start(model.search_epochs + 1)


@pytest.mark.parametrize("enc", ["mlp", "cnn"])
def test_output_shapes_in_every_phase(enc):
    model = build("learn_to_branch", enc)
    x, _ = batch()
    specs = {t.name: t for t in tasks()}
    for phase in ("search-train", "search-eval", "fixed-train", "fixed-eval"):
        if phase == "fixed-train":
            choose(model, {2: [0, 1, 1]}, [0, 1, 2])
        model.train(phase.endswith("train"))
        out = model(x)
        assert set(out) == set(specs)
        for t, y in out.items():
            assert y.shape == (8, specs[t].out_dim) or (specs[t].out_dim == 1 and y.shape == (8, 1)), (phase, t)


def test_default_widths_double_from_the_stem_and_bad_values_are_one_line():
    assert build("learn_to_branch").widths == [1, 2, 3]
    bad = [
        ({"widths": [1, 2]}, "arch.widths=[1, 2] must give one width per encoder stage"),
        ({"widths": [2, 2, 3]}, "arch.widths[0]=2 must be 1"),
        ({"widths": [1, 4, 3]}, "arch.widths[1]=4 must be an integer in [1, 3]"),
        ({"search_epochs": 0}, "arch.search_epochs=0 must be"),
        ({"temperature_decay": 1.5}, "arch.temperature_decay=1.5 must be"),
    ]
    for options, message in bad:
        with pytest.raises(ConfigError) as err:
            build("learn_to_branch", **options)
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"arch.search_epochs=2 must be < trainer.epochs=2"):
        build("learn_to_branch").check_epochs(2)


def test_during_the_search_every_node_is_shared_and_each_head_choice_is_its_task():
    model = build("learn_to_branch")
    x, targets = batch()
    check_partition(model, losses(model, x, targets))  # train mode: the Gumbel-softmax mixtures
    for t in model.task_names:
        assert any(p is model.head_logits[t] for p in model.task_parameters(t))
    assert model.tau() == pytest.approx(1.0)
    model.on_epoch_start(2)
    assert model.tau() == pytest.approx(0.9) and model.searching


def planted_choice(seed: int) -> tuple[list[tuple[str, ...]], list[list[float]]]:
    """Two pairs of identical tasks (a1 = a2, b1 = b2, the pairs' targets orthogonal) on two nodes of
    width 2: the heads' parents after a short search, and their branching probabilities."""
    torch.manual_seed(seed)
    specs = [regression_task(n) for n in ("a1", "a2", "b1", "b2")]
    spec = EncoderSpec(name="mlp", input_shape=(4,), options={"hidden": [16, 2]})
    model = ARCHS.build("learn_to_branch", {"widths": [1, 2], "search_epochs": 1}, encoder=spec, tasks=specs)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    a, b = x[:, 0] + x[:, 1], x[:, 2] - x[:, 3]
    y = {"a1": a, "a2": a, "b1": b, "b2": b}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(300):
        out = model(x)
        loss = sum(torch.nn.functional.mse_loss(out[t].squeeze(-1), y[t]) for t in y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.on_epoch_start(2)
    return model.partitions()[-1], model.tree()["probabilities"][-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identical_pairs_end_in_two_branches(seed):
    groups, probabilities = planted_choice(seed)
    assert sorted(groups) == [("a1", "a2"), ("b1", "b2")]
    assert all(max(row) > 0.6 for row in probabilities)


def test_after_the_switch_the_model_is_exactly_the_tree():
    model = build("learn_to_branch")
    choose(model, {2: [0, 1, 1]}, [0, 0, 2])  # stage-2 node 1 serves no task
    assert model.partitions() == [[("a", "b", "c")], [("a", "b"), ("c",)], [("a", "b"), ("c",)]]
    unused = list(model.nodes[2][1].parameters())
    logits = [*model.stage_logits.values(), *model.head_logits.values()]
    x, targets = batch()
    task_losses = losses(model, x, targets)
    sum(task_losses.values()).backward(retain_graph=True)
    for p in [*unused, *logits]:
        assert p.grad is None and not p.requires_grad
    for p in model.shared_parameters() + [p for t in model.task_names for p in model.task_parameters(t)]:
        assert p.grad is not None
    # the partition of the trainable parameters: the node of c alone is c's, the others shared
    c_own = {id(p) for p in model.task_parameters("c")}
    assert {id(p) for p in model.nodes[1][1].parameters()} <= c_own
    assert {id(p) for p in model.nodes[2][2].parameters()} <= c_own
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(p) for p in model.nodes[2][0].parameters()} <= shared
    for p in model.parameters():
        p.grad = None
    trainable = [p for p in model.parameters() if p.requires_grad]
    touched: dict[int, set[str]] = {id(p): set() for p in trainable}
    for t, loss in task_losses.items():
        for p, g in zip(trainable, torch.autograd.grad(loss, trainable, allow_unused=True, retain_graph=True)):
            if g is not None and g.abs().sum() > 0:
                touched[id(p)].add(t)
    for t in model.task_names:
        assert all(touched[id(p)] <= {t} for p in model.task_parameters(t))
    assert all(len(touched[id(p)]) >= 2 for p in model.shared_parameters())
    listed = [id(p) for p in model.shared_parameters()] + [
        id(p) for t in model.task_names for p in model.task_parameters(t)
    ]
    assert sorted(listed) == sorted(id(p) for p in trainable)


@pytest.mark.parametrize(
    ("stage_parents", "heads", "points"),
    [
        ({2: [0, 1, 1]}, [0, 1, 2], {"a": 1, "b+c": 1, "b": 2, "c": 2}),
        ({2: [0, 1, 1]}, [0, 0, 2], {"a+b": 1, "c": 1}),
        ({2: [1, 1, 1]}, [1, 1, 1], {"a+b+c": 0}),
    ],
)
@pytest.mark.parametrize("enc", ["mlp", "cnn"])
def test_tree_json_trains_as_arch_branched_with_identical_outputs(stage_parents, heads, points, enc):
    model = build("learn_to_branch", enc)
    choose(model, stage_parents, heads)
    tree = json.loads(model.run_files()["tree.json"])
    assert tree["branch_at"] == points and tree["fixed"]
    assert (
        tree["command"] == "arch=branched 'arch.branch_at={" + ", ".join(f"{g}: {s}" for g, s in points.items()) + "}'"
    )
    branched = Branched(encoder(enc), tasks(), branch_at=tree["branch_at"])
    assert [[list(g) for g in groups] for groups in branched.partitions] == tree["partitions"]
    serves = model.serves()
    for s, groups in enumerate(branched.partitions):
        for g in groups:
            node = serves[s].index(tuple(g))
            branched.branches[s][Branched.key(g)].load_state_dict(model.nodes[s][node].state_dict())
    branched.heads.load_state_dict(model.heads.state_dict())
    x, _ = batch()
    for training in (True, False):
        model.train(training)
        branched.train(training)
        ours, theirs = model(x), branched(x)
        for t in model.task_names:
            torch.testing.assert_close(ours[t], theirs[t], rtol=0, atol=0)


def test_branch_points_of_a_chain_of_splits():
    partitions = [[("a", "b", "c", "d")], [("a", "b"), ("c", "d")], [("a", "b"), ("c",), ("d",)]]
    assert branch_points(partitions) == {"a+b": 1, "c+d": 1, "c": 2, "d": 2}


def tree_trainer(epochs: int = 3) -> Trainer:
    data = DATASETS.build(
        "synthetic", {"num_tasks": 4, "clusters": 2, "num_samples": 480, "input_dim": 10, "correlation": 0.9}
    )
    torch.manual_seed(0)
    spec = EncoderSpec(name="mlp", input_shape=(10,), options={"hidden": [16, 8]})
    model = ARCHS.build("learn_to_branch", {"search_epochs": 1}, encoder=spec, tasks=list(data.tasks.values()))
    balancer = BALANCERS.build("pcgrad", {}, tasks=list(data.tasks))
    optimizer = build_optimizer("adam", param_groups(model, balancer, 0.0), 1e-2, 0.0, 0.9)
    return Trainer(
        model,
        balancer,
        data,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=64,
        grad_clip=0.0,
        seed=0,
        device=torch.device("cpu"),
        primary={t: data.tasks[t].primary for t in data.tasks},
    )


def stop_after(steps: int):
    calls = iter(range(10**6))
    return lambda: signal.SIGTERM if next(calls) == steps - 1 else None


@pytest.mark.parametrize("stop_at", [3, 7, 10])  # inside the search, at the switch's epoch boundary, after it
def test_checkpoint_resume_across_the_switch_is_exact(stop_at):
    whole_trainer = tree_trainer()
    whole = whole_trainer.fit()
    assert not whole_trainer.model.searching
    assert {id(p) for p in whole_trainer.shared} == {id(p) for p in whole_trainer.model.shared_parameters()}
    first = tree_trainer()
    assert first.data.train.num_batches(64) == 7
    first.should_stop = stop_after(stop_at)
    with pytest.raises(Interrupted):
        first.fit()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = tree_trainer()
    second.load_state_dict(torch.load(buffer, weights_only=True))
    result = second.fit()
    assert [asdict(r) for r in result.epochs] == [asdict(r) for r in whole.epochs]
    assert result.test_best == whole.test_best and result.test_last == whole.test_last
    assert second.model.tree() == whole_trainer.model.tree()
    assert {id(p) for p in second.shared} == {id(p) for p in second.model.shared_parameters()}
