"""Models: encoders, heads and the architectures (registered on import)."""

from mtlrun.models import arch, encoders_papers, resnet, segnet, tabular, text  # noqa: F401  (registration)
from mtlrun.models.base import ARCHS, MultiTaskModel
from mtlrun.models.encoders import ENCODERS, EncoderSpec, StagedEncoder

__all__ = ["ARCHS", "ENCODERS", "EncoderSpec", "MultiTaskModel", "StagedEncoder"]
