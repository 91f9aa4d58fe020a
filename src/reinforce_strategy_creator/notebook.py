"""What a notebook reads, checked before it reads it.

Each notebook under ``notebooks/`` starts by naming the catalog datasets it reads and the
command whose run leaves them. :func:`require` stops the notebook at that first cell with one
readable message (no traceback) when any of them is missing, instead of failing deep inside
on the first ``catalog.load``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .errors import InputError

__all__ = ["ArtifactsMissing", "require"]


class _Catalog(Protocol):
    def exists(self, ds_name: str) -> bool: ...


class ArtifactsMissing(InputError):
    """A notebook's datasets do not exist yet: the message names them and the command to run."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the message alone."""
        return [f"{type(self).__name__}: {self}"]


def require(catalog: _Catalog, datasets: Iterable[str], command: str) -> None:
    """Raise :class:`ArtifactsMissing` naming every dataset of ``datasets`` that ``catalog``
    does not hold yet and the ``command`` (run from the project root) that writes them."""
    missing = [name for name in datasets if not catalog.exists(name)]
    if missing:
        raise ArtifactsMissing(
            f"this notebook reads {', '.join(missing)}, which do not exist yet in this project's "
            f"data/ folder. Run `{command}` from the project root, then run the notebook again."
        )
