"""The ``genaudio`` command line: thin wrappers that parse options and call the library.

Each stage's commands live in their own module here; the library never imports this package.
"""
from __future__ import annotations

import importlib
import sys

import click

from genaudio import __version__
from genaudio.errors import GenaudioError

# Modules under genaudio.cli that each define ``command`` (a click command or group).
_COMMAND_MODULES = [
    "features",
    "extract",
    "analyze",
    "encode",
    "search",
    "train",
    "generate",
    "score",
    "pipeline",
    "config",
    "review",
]


class _Main(click.Group):
    """Turns GenaudioError into a one-line message and exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GenaudioError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt as e:
            click.secho(f"interrupted: {e}" if str(e) else "interrupted", fg="yellow", err=True)
            sys.exit(130)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="genaudio")
def main():
    """genaudio: music generation research from raw audio.

    \b
    Stages (data flows one way):
      extract  audio files -> Parquet feature store (Ray Data)
      analyze  which features matter (importance, plots, report)
      encode   compact codes with a decoder back to audio
      train    LSTM / GAN on the codes; generate to listen
      score    how far clips or models are from real music (the judge)
      search   Ray Tune + Optuna over features x encoder x model
      review   the best trials in the terminal and as HTML
      pipeline all of the above in one command

    Every command runs on an embedded local Ray unless --address or RAY_ADDRESS names a cluster.
    """


for _name in _COMMAND_MODULES:
    main.add_command(importlib.import_module(f"genaudio.cli.{_name}").command)
