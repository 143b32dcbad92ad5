"""Model zoo: baselines (VGG, ResNet-18, mini-Xception) and NASNet networks built from genotypes."""

from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
