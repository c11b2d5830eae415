"""``genaudio config``: the complete configuration file with every default, commented."""
from __future__ import annotations

import click


@click.command("config")
@click.option("--print-defaults", is_flag=True, help="Print the complete default YAML, with comments.")
@click.option("--check", "check_file", type=click.Path(dir_okay=False),
              help="Validate a YAML config file and print it resolved (defaults filled in).")
def command(print_defaults, check_file):
    """Print or check the YAML configuration that `genaudio pipeline --config` takes."""
    from genaudio.config import commented_yaml, load
    from genaudio.pipeline import PipelineConfig, defaults_yaml, to_sections

    if check_file:
        click.echo(commented_yaml(to_sections(load(PipelineConfig, check_file))))
    elif print_defaults:
        click.echo(defaults_yaml())
    else:
        raise click.UsageError("say --print-defaults or --check FILE")
