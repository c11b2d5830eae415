"""Self-contained HTML reports on one Jinja2 base template.

Both reports (``genaudio analyze`` and ``genaudio review --report``) extend
``templates/base.html.j2``, which holds the shared CSS, the load-time script that records on
``<body>`` how many images decoded and audio elements loaded (the browser tests read it), and the
macros in ``templates/macros.html.j2`` for tables, embedded plots and audio players. Python code
computes the numbers and tables; the templates hold the markup and the prose.
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any, Callable

import jinja2
import numpy as np
import pandas as pd

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("genaudio", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
)


def fmt_number(v: Any, *, na: str = "-", spec: str = ".4g") -> str:
    """A number as report text: ``spec`` formatting, ``na`` for NaN/None, ``inf`` for infinities."""
    if v is None:
        return na
    f = float(v)
    if math.isnan(f):
        return na
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return format(f, spec)


def table_cells(df: pd.DataFrame, *, na: str = "-", max_rows: int | None = None) -> dict:
    """``{"columns": [str], "rows": [[(text, css_class)]]}`` for the ``table`` macro.

    Floats are formatted with :func:`fmt_number` and classed ``num`` (right-aligned); a ``status``
    column's cells are classed ``status-<value>`` (coloured).
    """
    rows = df if max_rows is None else df.head(max_rows)
    out = []
    for rec in rows.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(rows.columns, rec):
            if isinstance(v, (float, np.floating)):
                cells.append((fmt_number(v, na=na), "num"))
            elif c == "status":
                cells.append(("" if v is None else str(v), f"status-{v}"))
            else:
                cells.append(("" if v is None else str(v), ""))
        out.append(cells)
    return {"columns": [str(c) for c in rows.columns], "rows": out}


def data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:`` URI (the report opens from disk without its plot files)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def try_plot(fn: Callable[..., Path], *args, alt: str, **kw) -> dict:
    """Draw a plot with ``fn(*args, **kw)`` (which returns the PNG's path) for the ``plot`` macro.

    Returns ``{"path", "alt", "error"}``: a plot that cannot be drawn from what a run holds becomes a
    one-line note in the report instead of costing the whole report.
    """
    try:
        return {"path": fn(*args, **kw), "alt": alt, "error": None}
    except Exception as e:
        return {"path": None, "alt": alt, "error": f"{type(e).__name__}: {e}"}


_ENV.globals.update(table_cells=table_cells, data_uri=data_uri, fmt_number=fmt_number)


def render(template: str, **context) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return _ENV.get_template(template).render(**context)
