"""Backbones (timm) and the small MLP heads ReSSL puts on them."""

from edgessl.models.registry import ARCHS, build_backbone, feature_dim

__all__ = ["ARCHS", "build_backbone", "feature_dim"]
