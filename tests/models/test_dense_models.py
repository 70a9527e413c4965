"""Dense models: heads at the input resolution, the parameter partition on feature maps, encoders, weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mtlrun.data.dense_tasks import depth_task, normal_task, segmentation_task
from mtlrun.data.tasks import classification_task
from mtlrun.errors import ConfigError
from mtlrun.models import ARCHS, EncoderSpec
from mtlrun.models.heads import build_head

SIZE = (3, 16, 24)
ENCODERS = {
    "segnet": {"channels": [4, 6], "convs": [1, 1]},
    "segnet_no_decoder": {"channels": [4, 6], "convs": [1, 1], "decoder": False},
    "resnet_dilated": {"depth": 18, "width": 2, "head_width": 4},
}


def encoder(key: str) -> EncoderSpec:
    return EncoderSpec(key.removesuffix("_no_decoder"), SIZE, ENCODERS[key])


def tasks() -> list:
    return [segmentation_task("seg", 5), depth_task("depth"), normal_task("normal")]


def batch(n: int = 3) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, *SIZE, generator=g)
    targets = {
        "seg": torch.randint(-1, 5, (n, *SIZE[1:]), generator=g),
        "depth": torch.rand(n, 1, *SIZE[1:], generator=g) + 0.5,
        "normal": nn.functional.normalize(torch.randn(n, 3, *SIZE[1:], generator=g), dim=1),
    }
    return x, targets


@pytest.mark.parametrize("key", ENCODERS)
def test_dense_heads_output_the_input_resolution(key: str):
    torch.manual_seed(0)
    enc = encoder(key).build()
    x, _ = batch()
    features = enc(x)
    assert tuple(features.shape[1:]) == enc.stage_shapes[-1]
    for task in tasks():
        assert build_head(task, enc)(features).shape == (3, task.out_dim, *SIZE[1:])
    # a vector task on a map reads the pooled map
    assert build_head(classification_task("scene", 4), enc)(features).shape == (3, 4)


def test_dilated_resnet_keeps_one_eighth():
    spec = EncoderSpec("resnet_dilated", (3, 64, 96), {"depth": 50, "width": 2})
    assert spec.build().stage_shapes[-1] == (64, 8, 12)
    plain = EncoderSpec("resnet_dilated", (3, 64, 96), {"depth": 50, "width": 2, "dilated": False})
    assert plain.build().stage_shapes[-1] == (64, 2, 3)


def test_dense_task_needs_a_map_encoder():
    enc = EncoderSpec("cnn", SIZE, {"channels": [4], "hidden": 8}).build()
    with pytest.raises(ConfigError, match="segnet, resnet_dilated"):
        build_head(depth_task(), enc)


CASES = [
    ("hps", {}),
    ("single_task", {}),
    ("cross_stitch", {}),
    ("mtan", {}),
    ("soft_sharing", {}),
    ("mmoe", {"num_experts": 2}),
    ("cgc", {"num_shared_experts": 1, "num_task_experts": 1}),
    ("ple", {"num_shared_experts": 1, "num_task_experts": 1}),
    ("branched", {"branch_at": {"seg": 1}}),
    ("dselect_k", {"num_experts": 2, "k": 1}),
    ("learn_to_branch", {}),
]


@pytest.mark.parametrize("key", ["segnet", "resnet_dilated"])
@pytest.mark.parametrize(("arch", "options"), CASES, ids=[c[0] for c in CASES])
def test_partition_holds_on_dense_models(arch: str, options: dict, key: str):
    """A task's loss gives no gradient to another task's parameters; shared ones serve several tasks."""
    torch.manual_seed(0)
    specs = {t.name: t for t in tasks()}
    model = ARCHS.build(arch, options, encoder=encoder(key), tasks=list(specs.values()))
    params = list(model.parameters())
    own = {t: {id(p) for p in model.task_parameters(t)} for t in model.task_names}
    x, targets = batch()
    outputs = model(x)
    for t, out in outputs.items():
        assert out.shape == (3, specs[t].out_dim, *SIZE[1:])
    touched: dict[int, set[str]] = {id(p): set() for p in params}
    for t in model.task_names:
        loss = specs[t].loss(outputs[t], targets[t])
        for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)):
            if g is not None and g.abs().sum() > 0:
                touched[id(p)].add(t)
    for t, ids in own.items():
        for p in params:
            if id(p) in ids:
                assert touched[id(p)] <= {t}
    for p in model.shared_parameters():
        assert len(touched[id(p)]) >= 2, f"shared parameter {tuple(p.shape)} serves only {touched[id(p)]}"


def test_cross_stitch_units_are_per_channel_on_maps():
    torch.manual_seed(0)
    model = ARCHS.build("cross_stitch", {}, encoder=encoder("segnet"), tasks=tasks())
    alpha = model.units[0]["seg"].alpha
    assert alpha.shape == (3, 4)
    scalar = ARCHS.build("cross_stitch", {"per_channel": False}, encoder=encoder("segnet"), tasks=tasks())
    assert scalar.units[0]["seg"].alpha.shape == (3,)


def test_torchvision_style_weights_load(tmp_path: Path):
    """A checkpoint with torchvision's ResNet names (and an fc layer) loads onto the stages."""
    torch.manual_seed(1)
    source = EncoderSpec("resnet_dilated", SIZE, ENCODERS["resnet_dilated"]).build()
    renamed = {}
    for key, value in source.state_dict().items():
        stage, rest = key.split(".", 2)[1:]
        renamed[f"layer{stage}.{rest}" if stage != "0" else rest] = value
    renamed["fc.weight"] = torch.zeros(10, 16)
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": renamed}, path)
    torch.manual_seed(2)
    loaded = EncoderSpec("resnet_dilated", SIZE, {**ENCODERS["resnet_dilated"], "weights": str(path)}).build()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    wrong = EncoderSpec("resnet_dilated", SIZE, {"depth": 18, "width": 4, "weights": str(path)})
    with pytest.raises(ConfigError, match="does not fit this encoder"):
        wrong.build()
    with pytest.raises(ConfigError, match="no such file"):
        EncoderSpec("segnet", SIZE, {**ENCODERS["segnet"], "weights": str(tmp_path / "none.pt")}).build()


def test_aspp_head_trains_on_a_batch_of_one():
    enc = encoder("resnet_dilated").build()
    head = build_head(depth_task(), enc).train()
    x, _ = batch(1)
    assert head(enc(x)).shape == (1, 1, *SIZE[1:])
