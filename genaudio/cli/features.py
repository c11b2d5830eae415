"""``genaudio features``: the feature catalog, and figures + summary of one audio file."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from genaudio.errors import ConfigError


def _configs(config_file: str | None):
    from genaudio.config import AudioConfig, FeatureConfig, from_dict, load_yaml

    data = load_yaml(config_file) if config_file else {}
    unknown = sorted(set(data) - {"audio", "features", "segment", "store"})
    if unknown:
        raise ConfigError(f"{config_file}: unknown section(s) {', '.join(unknown)}; valid: audio, features, segment")
    return (from_dict(AudioConfig, data.get("audio"), where="audio"),
            from_dict(FeatureConfig, data.get("features"), where="features"))


@click.group("features")
def command():
    """The feature catalog, and figures of one audio file.

    \b
      genaudio features list                 the catalog as a table (--format json)
      genaudio features show FILE --out DIR  PNG figures + summary.csv of one file
    """


@command.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
@click.option("--group", multiple=True, help="Only these groups (waveform, spectrum, spectral, cepstral, "
                                             "tonal, rhythm, harmonic, pitch). Repeatable.")
@click.option("--default-only", is_flag=True, help="Only the default feature set.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML whose `features:` section sets n_mfcc, n_mels, ... (dims follow it).")
def list_cmd(fmt, group, default_only, config_file):
    """Print the feature catalog: name, group, dims, frame-level, default, cost, description."""
    from genaudio.features import CATALOG, GROUPS

    _, fcfg = _configs(config_file)
    bad = sorted(set(group) - set(GROUPS))
    if bad:
        raise ConfigError(f"unknown group(s) {', '.join(bad)}; valid: {', '.join(GROUPS)}")
    specs = [s for s in CATALOG.values() if (not group or s.group in group) and (s.default or not default_only)]
    if fmt == "json":
        click.echo(json.dumps([s.to_dict(fcfg) for s in specs], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"genaudio feature catalog ({len(specs)} of {len(CATALOG)} features)",
                  show_lines=False, header_style="bold")
    for col, kw in (("name", {"style": "cyan", "no_wrap": True}), ("group", {}), ("dims", {"justify": "right"}),
                    ("frame", {"justify": "center"}), ("default", {"justify": "center"}),
                    ("cost", {"justify": "center"}), ("description", {"ratio": 1})):
        table.add_column(col, **kw)
    for s in sorted(specs, key=lambda s: (GROUPS.index(s.group), list(CATALOG).index(s.name))):
        table.add_row(s.name, s.group, str(s.dims(fcfg)), "yes" if s.frame_level else "clip",
                      "yes" if s.default else "-", "*" * s.cost, s.description)
    # a pipe or file gets a wide table (rich would wrap descriptions at 80 columns)
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print("frame: yes = (dims, time) matrix per hop; clip = one (dims,) vector per clip. "
                  "cost (alone, 30 s clip): * <= 20 ms, ** <= 100 ms, *** <= 300 ms, **** <= 3 s, ***** > 3 s; "
                  "shared intermediates (STFT, CQT, onset envelope) are paid once.")


@command.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the PNG figures and summary.csv (created).")
@click.option("--features", "features", default=None, metavar="NAMES",
              help="Comma-separated catalog names for summary.csv (default: the default set).")
@click.option("--offset", type=float, default=0.0, show_default=True, help="Start (s) within the file.")
@click.option("--duration", type=float, default=None, help="Seconds to analyse (default: the whole file).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML with `audio:` and `features:` sections (sample rate, n_fft, hop, n_mels, ...).")
def show_cmd(file, out_dir, features, offset, duration, config_file):
    """Write figures of FILE (waveform, spectrogram, mel, MFCC, chroma, long-term spectrum,
    spectral shape, onsets/beats, tempogram, tonnetz) and its summary values as CSV."""
    from genaudio.audio import load
    from genaudio.features import Analysis, resolve, summarize
    from genaudio.features.plots import plot_clip
    from genaudio.store import parse_summary_column

    acfg, fcfg = _configs(config_file)
    names = resolve([n.strip() for n in features.split(",") if n.strip()] if features else None, fcfg)
    y, sr = load(file, config=acfg, offset=offset, duration=duration)
    if y.ndim > 1:  # the audio config asked to keep channels: analyse their mean
        y = y.mean(axis=0)
    a = Analysis(y, sr, config=fcfg)
    summary = summarize(a.compute(names), config=fcfg)
    out = Path(out_dir)
    pngs = plot_clip(y, sr, out, config=fcfg, title=Path(file).name, analysis=a)
    csv_path = out / "summary.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["feature", "dim", "stat", "value"])
        for col, value in summary.items():
            feat, dim, stat = parse_summary_column(col)
            w.writerow([feat, dim, stat, f"{value:.7g}"])
    click.echo(f"{file}: {len(y) / sr:.2f} s at {sr} Hz, {len(names)} features, {len(summary)} summary values")
    for p in pngs + [csv_path]:
        click.echo(f"  wrote {p}")
