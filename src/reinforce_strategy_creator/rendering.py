"""The project's HTML reports, rendered from the package's Jinja2 templates (``templates/``).

One environment with autoescaping on and strict undefined: every value a template prints (a
ticker, an agent name, a file name, a parameter value, an error text) is escaped, and a value the
template names but the caller did not pass is an error, not an empty string. Callers pass data
(text, numbers, rows of formatted cells, base64 PNG strings), never pre-built HTML.
"""

from __future__ import annotations

from typing import Any

import jinja2

__all__ = ["render_html"]

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("reinforce_strategy_creator", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(template: str, **context: Any) -> str:
    """The page of ``templates/<template>`` filled with ``context`` (every value escaped)."""
    return _ENVIRONMENT.get_template(template).render(**context)
