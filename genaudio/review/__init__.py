"""Reviewing a search: the top trials in the terminal and a self-contained HTML report.

>>> from genaudio.review import load_run, build_report
>>> run = load_run("runs/search1")          # finished, running, interrupted or empty
>>> print(run.status_line())
>>> build_report(run, "runs/search1-review", top=5, clips=2)

No Ray: the RUN folder's results table, Tune trial folders and Optuna study are read from disk.
"""
from genaudio.review.table import Run, load_run, read_history, render_table, to_csv, to_json

__all__ = ["Run", "load_run", "read_history", "render_table", "to_csv", "to_json", "build_report"]


def __getattr__(name):
    if name == "build_report":
        from genaudio.review.report import build_report
        return build_report
    raise AttributeError(name)
