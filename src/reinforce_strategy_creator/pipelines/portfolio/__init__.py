"""``portfolio``: a universe -> per fold train, select on validation, trade test -> one stitched
record and its gate -> the deployment fold's champion -> registry -> paper accounts."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
