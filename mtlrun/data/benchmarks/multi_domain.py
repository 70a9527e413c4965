"""MultiDomain: a synthetic multi-input dataset (each task its own inputs), built without files.

Office-31-style: T domains share one label space, and each domain is a task with its own samples
and its own input space. Class c has a centre ``mu_c`` in a latent space (R^k, shared by all
domains); a sample of domain d is ``x = tanh(A_d (mu_c + noise_std * eps)) + b_d`` with a random
projection ``A_d`` (input_dims[d] x k) and offset ``b_d`` of its own, so the domains' inputs differ
in size and distribution while the class structure behind them is shared: what one domain
teaches the shared encoder can help the others, which is the point of training them together.
Tasks are ``d1`` ... ``dT`` (classification over ``num_classes`` classes), each with its own
train/val/test split.
"""

from __future__ import annotations

import torch

from mtlrun.data.base import DATASETS, TensorSplit, split_indices
from mtlrun.data.multi_input import MultiInputDataset, MultiInputSplit, common_input_shape
from mtlrun.data.tasks import classification_task
from mtlrun.errors import ConfigError
from mtlrun.registry import in_range, positive


def _per_domain(key: str, value: int | list[int], num_domains: int) -> list[int]:
    """One value per domain: an int repeats, a list must have ``num_domains`` entries."""
    values = [value] * num_domains if isinstance(value, int) else list(value)
    if len(values) != num_domains:
        raise ConfigError(f"dataset.{key}={value} must list one value per domain ({num_domains}) or be one integer")
    positive("dataset", **{f"{key}[{i}]": v for i, v in enumerate(values)})
    return values


@DATASETS.register("multi_domain")
def multi_domain(
    num_domains: int = 2,
    input_dims: int | list[int] = (16, 24),
    num_samples: int | list[int] = (900, 450),
    num_classes: int = 4,
    latent_dim: int = 8,
    noise_std: float = 0.6,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> MultiInputDataset:
    """Build MultiDomain; the same ``seed`` always gives the same domains, samples and splits."""
    if num_domains < 1:
        raise ConfigError(f"dataset.num_domains={num_domains} must be >= 1")
    dims = _per_domain("input_dims", input_dims, num_domains)
    sizes = _per_domain("num_samples", num_samples, num_domains)
    if num_classes < 2:
        raise ConfigError(f"dataset.num_classes={num_classes} must be >= 2")
    positive("dataset", latent_dim=latent_dim)
    if noise_std < 0:
        raise ConfigError(f"dataset.noise_std={noise_std} must be >= 0")
    in_range("dataset", "val_fraction", val_fraction, 0.01, 0.5)
    in_range("dataset", "test_fraction", test_fraction, 0.01, 0.5)
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(num_classes, latent_dim, generator=g)
    names = [f"d{i + 1}" for i in range(num_domains)]
    parts: dict[str, list[TensorSplit]] = {}
    for name, dim, n in zip(names, dims, sizes):
        projection = torch.randn(latent_dim, dim, generator=g) / latent_dim**0.5
        offset = torch.randn(dim, generator=g)
        labels = torch.randint(0, num_classes, (n,), generator=g)
        latent = centres[labels] + noise_std * torch.randn(n, latent_dim, generator=g)
        x = torch.tanh(latent @ projection) + offset
        train_i, val_i, test_i = split_indices(n, (val_fraction, test_fraction), g)
        if min(len(train_i), len(val_i), len(test_i)) == 0:
            raise ConfigError(f"dataset.num_samples of domain {name} ({n}) is too small for a train/val/test split")
        parts[name] = [TensorSplit(x[i], {name: labels[i]}) for i in (train_i, val_i, test_i)]
    shapes = {name: (dim,) for name, dim in zip(names, dims)}
    train, val, test = (MultiInputSplit({t: parts[t][k] for t in names}) for k in range(3))
    return MultiInputDataset(
        tasks={t: classification_task(t, num_classes) for t in names},
        train=train,
        val=val,
        test=test,
        input_shape=common_input_shape(shapes),
        default_encoder="mlp",
        info={"sizes": {t: [len(p) for p in parts[t]] for t in names}, "input_dims": dict(zip(names, dims))},
        input_shapes=shapes,
    )
