"""Repeated track-level cross-validation of any model, stratified and grouped (artist proxy)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
