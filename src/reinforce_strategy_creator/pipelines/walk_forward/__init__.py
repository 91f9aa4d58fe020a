"""``walk_forward``: per fold train → select on validation → trade test; one stitched record; its gate."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
