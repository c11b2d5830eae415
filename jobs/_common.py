"""Shared launcher of the ``jobs/<stage>.py`` entry points.

Each job script is the ``genaudio <stage>`` command with the same options, run as a Ray job
driver::

    ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml \
        --working-dir . -- python jobs/extract.py samples --out /data/runs/feat

Jobs are not library code, so they reuse the command line (``genaudio.cli``) rather than
re-declaring options: ``python jobs/extract.py --help`` shows exactly ``genaudio extract --help``.

Inside a job the Ray job server sets ``RAY_ADDRESS`` for the driver; the stages call
``ray.init()`` without an explicit address in that case, so they join the cluster that runs the
job instead of starting an embedded one.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# `python jobs/extract.py` puts jobs/ (not the repository root) on sys.path. When the job runs
# from an uploaded working_dir (or a checkout without `pip install -e .`), make the genaudio
# package that sits next to jobs/ importable; an installed genaudio is used otherwise.
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "genaudio" / "__init__.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

# Options that name where a stage writes its results (`review` writes its HTML to --report).
_OUTPUT_OPTIONS = ("--out", "-o", "--report")


def job_submission_id() -> str | None:
    """The submission id when this process is the driver of a submitted Ray job, else None.

    Ray 2.60's job server gives the entrypoint ``RAY_ADDRESS`` and the job's config as JSON in
    ``RAY_JOB_CONFIG_JSON_ENV_VAR`` (whose metadata holds the submission id); it sets no
    dedicated variable.
    """
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return None
    try:
        meta = json.loads(raw).get("metadata") or {}
    except (ValueError, AttributeError):
        return None
    return meta.get("job_submission_id") or meta.get("job_name") or "unknown"


def in_ray_job() -> bool:
    """True when this process is the driver of a submitted Ray job."""
    return job_submission_id() is not None


def _output_paths(argv: list[str]) -> list[str]:
    found = []
    for i, arg in enumerate(argv):
        for opt in _OUTPUT_OPTIONS:
            if arg == opt and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif opt.startswith("--") and arg.startswith(opt + "="):
                found.append(arg.split("=", 1)[1])
    return found


def check_job_outputs(argv: list[str]) -> str | None:
    """An error message if a submitted job would write its results where nobody finds them.

    A job runs in a temporary copy of the working_dir that Ray deletes later, so a relative
    ``--out`` would vanish with it. URIs (``s3://...``) are left to the stage to judge.
    """
    if not in_ray_job():
        return None
    for out in _output_paths(argv):
        if "://" in out:
            continue
        if not os.path.isabs(os.path.expanduser(out)):
            return (
                f"--out {out!r} is relative: inside a Ray job it would land in the job's temporary "
                "working directory, which Ray deletes. Give an absolute path on storage every "
                "node sees (e.g. --out /data/genaudio/runs/extract)."
            )
    return None


def run(stage: str, argv: list[str] | None = None) -> None:
    """Run ``genaudio <stage> ARGV...`` as this job's driver and exit with its status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = f"jobs/{stage}.py"
    problem = check_job_outputs(argv)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)

    from genaudio.cli import main

    if stage not in main.commands:
        import genaudio

        print(
            f"error: this genaudio ({genaudio.__version__}, {Path(genaudio.__file__).parent}) has "
            f"no '{stage}' command; available: {', '.join(sorted(main.commands)) or 'none'}",
            file=sys.stderr,
        )
        sys.exit(2)
    if in_ray_job():
        # One line at the top of `ray job logs` saying where the driver runs, for debugging.
        print(
            f"[{prog}] Ray job {job_submission_id()}"
            f" on {os.environ.get('RAY_ADDRESS', '?')}, cwd {os.getcwd()}",
            flush=True,
        )
    from genaudio.errors import GenaudioError

    # The command itself with this script as the program name, so `--help` reads
    # "Usage: python jobs/extract.py [OPTIONS] INPUT..."; a GenaudioError becomes one line and exit
    # status 2, exactly as `genaudio <stage>` reports it.
    try:
        main.commands[stage].main(args=argv, prog_name=f"python {prog}", standalone_mode=True,
                                  **main.context_settings)
    except GenaudioError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
