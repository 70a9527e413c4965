"""Built-in datasets: reproducible composition, labels that match the images, real correlation."""

from __future__ import annotations

import torch

from mtlrun.data import DATASETS
from mtlrun.data.benchmarks.multi_digits import compose_pairs
from mtlrun.data.benchmarks.synthetic import mmoe_synthetic


def test_multi_digits_is_reproducible_and_consistent():
    a, b = DATASETS.build("multi_digits", {}), DATASETS.build("multi_digits", {})
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.targets["left"], b.test.targets["left"])
    c = DATASETS.build("multi_digits", {"seed": 1})
    assert not torch.equal(a.train.x, c.train.x)
    for split in (a.train, a.val, a.test):
        t = split.targets
        assert torch.equal(t["sum"], (t["left"] + t["right"]).float())
        assert torch.equal(t["parity"], ((t["left"] + t["right"]) % 2).float())
    assert a.input_shape == (1, 10, 16) and a.default_encoder == "cnn"
    assert set(a.tasks) == {"left", "right", "sum", "parity"}


def test_composition_places_left_and_right_digits():
    images = torch.zeros(2, 8, 8)
    images[0, :, 0] = 1.0  # a vertical bar in the digit's first column
    labels = torch.tensor([0, 1])
    g = torch.Generator().manual_seed(0)
    x, left, right = compose_pairs(images, labels, pairs_per_image=50, max_overlap=4, generator=g)
    for canvas, lt, rt in zip(x[:, 0], left, right):
        on = canvas.sum(0).nonzero().flatten().tolist()
        if lt == 0:
            assert 0 in on  # the left digit starts at column 0
        if rt == 0:
            assert any(4 <= c <= 8 for c in on)  # the right digit starts at 8 - overlap
        if lt == 1 and rt == 1:
            assert on == []


def test_synthetic_linear_parts_have_the_requested_correlation():
    for p in (-0.8, 0.0, 0.5, 0.9, 1.0):
        g = torch.Generator().manual_seed(0)
        _, _, linear = mmoe_synthetic(20000, 50, p, 2, 1.0, 5, 0.1, g)
        r = torch.corrcoef(linear.T)[0, 1].item()
        assert abs(r - p) <= 0.05, (p, r)


def test_synthetic_tasks_and_splits():
    d = DATASETS.build("synthetic", {"num_tasks": 3, "num_samples": 1200, "input_dim": 10})
    assert list(d.tasks) == ["t1", "t2", "t3"]
    assert len(d.train) + len(d.val) + len(d.test) == 1200
    assert d.default_encoder == "mlp" and d.input_shape == (10,)
