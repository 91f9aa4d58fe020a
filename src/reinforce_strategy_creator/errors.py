"""One base class for bad input: ``InputError``.

Every error that describes a problem with what the user gave (a file, a parameter, an artifact,
a feed) derives from it and says what is wrong and what to do; the CLI hook prints such errors as
their message, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names the file, column, row, ticker, artifact or parameter, and the fix."""
