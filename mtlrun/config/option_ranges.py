"""The declared range of every numeric option of every built-in component, by ``(group, choice)``.

``python -m mtlrun.config.generate`` copies each range into the option's field of ``options.py``,
where ``validate``, ``mtlrun --cfg job`` and docs/options.md read it; a test fails while a numeric
option of a registered component has none (so a new option comes with its range). A range states
what the method or torch accepts, with the paper's meaning: a dropout probability in [0, 1), a
temperature or learning rate > 0, a count of experts >= 1. Cross-option rules (``arch.k <=
arch.num_experts``) stay with the component's constructor. Free of torch.
"""

from __future__ import annotations

from mtlrun.config.ranges import Range

POSITIVE = Range(gt=0)
NON_NEGATIVE = Range(ge=0)
AT_LEAST_1 = Range(ge=1)
FINITE = Range()
#: a probability of dropping a unit (torch.nn.Dropout): 1 would drop everything
DROPOUT = Range(ge=0, lt=1)
#: numpy's seeds (``np.random.default_rng``, the legacy ``RandomState``) and torch's generators both take these
SEED = Range(ge=0, le=2**32 - 1)
#: a held-out share of the rows: the rest is the train split (their sum is checked by the dataset)
FRACTION = Range(ge=0, lt=1)
#: held-out shares of the benchmarks built by mtlrun: at least one example, at most half
HALF = Range(ge=0.01, le=0.5)
#: image side length of the image benchmarks (resized on load)
IMAGE_SIDE = Range(ge=8, le=512)
#: every gradient method: steps between recomputing the task Jacobian (its weights are reused in between)
GRADIENT = {"update_every": AT_LEAST_1}
#: a downloaded benchmark with a seeded validation split carved from its training set
MNIST_LIKE = {
    "seed": SEED,
    "val_fraction": Range(ge=0, le=0.5),
    "train_limit": Range(ge=0, note="0 = every training composite"),
}

#: how a text dataset turns texts into ids (dataset=text, clothing_reviews)
TEXT = {
    "vocab_size": Range(ge=8, note="ids in all, the 4 specials included; byte: always 260"),
    "min_frequency": AT_LEAST_1,
    "max_length": Range(ge=2, note="ids per text, [CLS] included"),
    "buckets": Range(ge=0, note="0 = plain shuffle, no length buckets"),
}

RANGES: dict[tuple[str, str], dict[str, Range]] = {
    # -- datasets -------------------------------------------------------------------------
    ("dataset", "celeba"): {"image_size": IMAGE_SIDE},
    ("dataset", "census_income"): {
        "group": Range(choices=(1, 2)),
        "seed": SEED,
        "val_fraction": Range(ge=0.01, le=0.99),
    },
    ("dataset", "cityscapes"): {
        "num_classes": Range(ge=2),
        "val_size": Range(ge=0, note="0 = the test split picks the best epoch, as in the papers"),
        "seed": SEED,
    },
    ("dataset", "image_folder"): {
        "size": AT_LEAST_1,
        "val_fraction": Range(gt=0, lt=1),
        "test_fraction": Range(gt=0, lt=1),
        "seed": SEED,
    },
    ("dataset", "multi_digits"): {
        "seed": SEED,
        "pairs_per_image": AT_LEAST_1,
        "max_overlap": Range(ge=0, le=8),  # columns of an 8-pixel-wide digit
        "val_fraction": HALF,
        "test_fraction": HALF,
    },
    ("dataset", "multi_domain"): {
        "num_domains": AT_LEAST_1,
        "input_dims": AT_LEAST_1,
        "num_samples": AT_LEAST_1,
        "num_classes": Range(ge=2),
        "latent_dim": AT_LEAST_1,
        "noise_std": NON_NEGATIVE,
        "val_fraction": HALF,
        "test_fraction": HALF,
        "seed": SEED,
    },
    ("dataset", "multi_fashion"): MNIST_LIKE,
    ("dataset", "multi_fashion_mnist"): MNIST_LIKE,
    ("dataset", "multi_mnist"): MNIST_LIKE,
    ("dataset", "nyuv2"): {
        "val_size": Range(ge=0, note="0 = the test split picks the best epoch, as in the papers"),
        "seed": SEED,
    },
    ("dataset", "office31"): {"size": IMAGE_SIDE, "seed": SEED},
    ("dataset", "office_home"): {"size": IMAGE_SIDE, "seed": SEED},
    ("dataset", "penguins"): {"seed": SEED, "val_fraction": HALF, "test_fraction": HALF},
    ("dataset", "qm9"): {"seed": SEED, "val_size": AT_LEAST_1, "test_size": AT_LEAST_1},
    ("dataset", "synthetic"): {
        "correlation": Range(ge=-1, le=1),  # the cosine between the task weight vectors (MMoE, Sec. 3.2)
        "num_tasks": Range(ge=2),
        "input_dim": Range(ge=2),  # and >= num_tasks (orthogonal task vectors)
        "num_samples": AT_LEAST_1,
        "scale": POSITIVE,
        "num_sinusoids": NON_NEGATIVE,
        "noise_std": NON_NEGATIVE,
        "val_fraction": FRACTION,
        "test_fraction": FRACTION,
        "seed": SEED,
        # planted task clusters: their number (<= num_tasks) or each task's cluster; correlation then in (0, 1]
        "clusters": Range(ge=0, note="0 = no clusters (the MMoE generator)"),
    },
    ("dataset", "table"): {
        "val_fraction": Range(gt=0, lt=1),
        "test_fraction": Range(gt=0, lt=1),
        "seed": SEED,
        "max_values": AT_LEAST_1,
        "hash_buckets": Range(ge=0, note="0 = ids unseen in train share index 0"),
    },
    ("dataset", "aliexpress"): {
        "val_fraction": Range(ge=0.001, le=0.5),
        "seed": SEED,
        "hash_buckets": Range(ge=0, note="0 = ids unseen in train share index 0"),
    },
    ("dataset", "ali_ccp"): {"hash_buckets": Range(ge=0, note="0 = ids unseen in train share index 0")},
    ("dataset", "movielens100k"): {
        "like_threshold": Range(ge=2, le=5),
        "val_fraction": Range(ge=0.01, le=0.5),
        "test_fraction": Range(ge=0.01, le=0.5),
        "seed": SEED,
        "hash_buckets": Range(ge=0, note="0 = ids unseen in train share index 0"),
    },
    ("dataset", "text"): {
        "val_fraction": Range(gt=0, lt=1),
        "test_fraction": Range(gt=0, lt=1),
        "seed": SEED,
        **TEXT,
    },
    ("dataset", "clothing_reviews"): {"val_fraction": HALF, "test_fraction": HALF, "seed": SEED, **TEXT},
    # -- encoders -------------------------------------------------------------------------
    ("encoder", "cnn"): {"channels": AT_LEAST_1, "hidden": AT_LEAST_1},
    ("encoder", "lenet"): {"dropout": DROPOUT, "features": AT_LEAST_1},
    ("encoder", "mlp"): {"hidden": AT_LEAST_1, "dropout": DROPOUT},
    ("encoder", "mpnn"): {"dim": AT_LEAST_1, "steps": AT_LEAST_1, "rbf": AT_LEAST_1, "cutoff": POSITIVE},
    ("encoder", "resnet18"): {"width": AT_LEAST_1, "blocks": AT_LEAST_1},
    ("encoder", "resnet_dilated"): {
        "depth": Range(choices=(18, 34, 50, 101, 152)),  # torchvision's ResNets
        "width": AT_LEAST_1,
        "head_width": AT_LEAST_1,
    },
    ("encoder", "segnet"): {"channels": AT_LEAST_1, "convs": AT_LEAST_1},
    ("encoder", "tabular"): {
        "hidden": AT_LEAST_1,
        "dropout": DROPOUT,
        "embedding_dim": AT_LEAST_1,
        "max_embedding_dim": AT_LEAST_1,
    },
    ("encoder", "tabular_embedding"): {"embedding_dim": AT_LEAST_1, "hidden": AT_LEAST_1},
    ("encoder", "text_cnn"): {  # Kim (2014): widths 3, 4, 5 with 100 maps each, dropout 0.5
        "embedding_dim": AT_LEAST_1,
        "widths": AT_LEAST_1,
        "filters": AT_LEAST_1,
        "dropout": DROPOUT,
        "hidden": Range(ge=0, note="0 = no projection stage"),
    },
    ("encoder", "bilstm"): {
        "embedding_dim": AT_LEAST_1,
        "hidden_size": AT_LEAST_1,
        "layers": AT_LEAST_1,
        "dropout": DROPOUT,
        "hidden": Range(ge=0, note="0 = no projection stage"),
    },
    ("encoder", "transformer"): {  # dim must be a multiple of heads (checked by the encoder)
        "dim": AT_LEAST_1,
        "layers": AT_LEAST_1,
        "heads": AT_LEAST_1,
        "ff_dim": AT_LEAST_1,
        "dropout": DROPOUT,
        "hidden": Range(ge=0, note="0 = no projection stage"),
    },
    # -- architectures --------------------------------------------------------------------
    ("arch", "cgc"): {"num_shared_experts": NON_NEGATIVE, "num_task_experts": AT_LEAST_1},  # Tang et al. (2020)
    ("arch", "ple"): {"num_shared_experts": AT_LEAST_1, "num_task_experts": NON_NEGATIVE},
    # the weight of a unit's own task in the cross-stitch unit (Misra et al., 2016): a convex mix
    ("arch", "cross_stitch"): {"alpha_self": Range(ge=0, le=1)},
    ("arch", "dselect_k"): {  # Hazimeh et al. (2021): gamma scales the smooth-step, k <= num_experts
        "num_experts": Range(ge=2),
        "k": AT_LEAST_1,
        "gamma": POSITIVE,
        "entropy_reg": NON_NEGATIVE,
    },
    ("arch", "mmoe"): {"num_experts": AT_LEAST_1},
    ("arch", "learn_to_branch"): {  # Guo et al. (2020): widths[0] = 1, each <= tasks; search_epochs < epochs
        "search_epochs": AT_LEAST_1,
        "widths": AT_LEAST_1,
        "temperature": POSITIVE,
        "temperature_decay": Range(gt=0, le=1),
    },
    ("arch", "aitm"): {"calibration": Range(ge=0, note="Xi et al. (2021): alpha = 0.6; 0 = no calibrator")},
    ("arch", "soft_sharing"): {"strength": NON_NEGATIVE},
    # -- balancers ------------------------------------------------------------------------
    ("balancer", "aligned_mtl"): GRADIENT,
    ("balancer", "auto_lambda"): {"weight_init": FINITE, "weight_lr": POSITIVE},  # the weights are unconstrained
    ("balancer", "cagrad"): {  # Liu et al. (2021): c >= 0 is the radius of the ball around g0 (0 = equal weighting)
        "c": NON_NEGATIVE,
        "rescale": Range(choices=(0, 1, 2)),
        **GRADIENT,
    },
    ("balancer", "conflict_free"): GRADIENT,
    ("balancer", "db_mtl"): {"beta": Range(ge=0, le=1), "beta_sigma": NON_NEGATIVE},  # an EMA factor
    ("balancer", "cr_mogm"): {"alpha": Range(ge=0, le=1), **GRADIENT},  # Zhou et al. (2022): an EMA factor
    ("balancer", "dualproj"): GRADIENT,
    ("balancer", "dwa"): {"temperature": POSITIVE},  # Liu et al. (2019): the softmax temperature T
    ("balancer", "excess_mtl"): {"robust_step_size": POSITIVE, **GRADIENT},
    ("balancer", "fairgrad"): {"alpha": Range(gt=0, note="alpha=0 is equal weighting: use balancer=ew"), **GRADIENT},
    ("balancer", "famo"): {"w_lr": POSITIVE, "gamma": NON_NEGATIVE, "min_losses": FINITE},  # gamma: weight decay
    ("balancer", "forum"): {
        "rho": POSITIVE,
        "inner_lr": POSITIVE,
        "inner_steps": AT_LEAST_1,
        "weight_lr": POSITIVE,
        "ema_power": Range(ge=0, le=1),
    },
    ("balancer", "go4align"): {"num_groups": AT_LEAST_1, "eta": POSITIVE},  # Shen et al. (2024): K groups
    ("balancer", "graddrop"): {"leak": Range(ge=0, le=1)},  # Chen et al. (2020): the share of the gradient kept
    ("balancer", "gradnorm"): {"alpha": NON_NEGATIVE, "lr": POSITIVE, **GRADIENT},  # Chen et al. (2018)
    ("balancer", "gradvac"): {"beta": Range(ge=0, le=1), "eps": POSITIVE, **GRADIENT},  # beta: EMA of the cosines
    ("balancer", "imtl"): GRADIENT,
    ("balancer", "ldc_mtl"): {"lam": NON_NEGATIVE, "init_logit": FINITE},  # Xiao et al. (2025): the penalty lambda
    ("balancer", "mgda"): GRADIENT,
    ("balancer", "moco"): {  # Fernando et al. (2023): beta, gamma are step sizes, Y a moving average
        "beta": Range(gt=0, le=1),
        "beta_sigma": NON_NEGATIVE,
        "gamma": POSITIVE,
        "gamma_sigma": NON_NEGATIVE,
        "rho": NON_NEGATIVE,
    },
    ("balancer", "modo"): {"gamma": POSITIVE, "rho": NON_NEGATIVE},
    ("balancer", "moml"): {"inner_lr": POSITIVE, "weight_lr": POSITIVE},
    ("balancer", "nash_mtl"): {"max_norm": Range(ge=0, note="0 disables the clipping"), **GRADIENT},
    ("balancer", "pbi"): {"theta": NON_NEGATIVE, "preference": NON_NEGATIVE, "reference": FINITE},  # MOEA/D
    ("balancer", "pcgrad"): GRADIENT,
    ("balancer", "rlw"): {"concentration": POSITIVE},  # of the Dirichlet distribution
    ("balancer", "sdmgrad"): {  # Xiao et al. (2023): lam >= 0 pulls towards g0, w_momentum an EMA factor
        "lam": NON_NEGATIVE,
        "niter": AT_LEAST_1,
        "w_lr": POSITIVE,
        "w_momentum": Range(ge=0, lt=1),
        "rho": NON_NEGATIVE,
    },
    ("balancer", "stch"): {"mu": POSITIVE, "warmup_epochs": NON_NEGATIVE},  # Lin et al. (2024): the smoothing mu
    ("balancer", "torchjd"): GRADIENT,
    ("balancer", "upgrad"): GRADIENT,
    ("balancer", "uw"): {"init_log_variance": FINITE},
    # -- schedules and loggers ------------------------------------------------------------
    ("schedule", "curriculum"): {"stagger": AT_LEAST_1, "ramp_epochs": NON_NEGATIVE, "warmup_steps": AT_LEAST_1},
    ("logger", "tensorboard"): {"flush_secs": AT_LEAST_1},
}
