"""Optional: fine-tune the top of MusiCNN (``kedro run --pipeline transfer_finetune``)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
