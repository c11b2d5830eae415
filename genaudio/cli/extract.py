"""``genaudio extract``: audio files -> Parquet features store (Ray Data)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from genaudio.errors import ConfigError


def _read_feature_file(path: Path) -> dict:
    """A subset file (e.g. written by ``genaudio analyze``): YAML or JSON with a ``features:`` list
    and optionally ``frame_features:``; a bare list is taken as ``features``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"--features {path}: cannot read it: {e}") from None
    if isinstance(data, list):
        data = {"features": data}
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise ConfigError(f"--features {path}: expected a `features:` list of feature names")
    out = {"features": [str(x) for x in data["features"]]}
    if "frame_features" in data:
        if not isinstance(data["frame_features"], list):
            raise ConfigError(f"--features {path}: `frame_features:` must be a list")
        out["frame_features"] = [str(x) for x in data["frame_features"]]
    return out


def _features_option(values: tuple[str, ...]) -> dict:
    names: list[str] = []
    extra: dict = {}
    for v in values:
        p = Path(v)
        if p.suffix.lower() in (".yaml", ".yml", ".json") or p.is_file():
            sub = _read_feature_file(p)
            names += sub["features"]
            if "frame_features" in sub:
                extra["frame_features"] = sub["frame_features"]
        else:
            names += [n.strip() for n in v.split(",") if n.strip()]
    return {"features": list(dict.fromkeys(names)), **extra}


@click.command("extract")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Features store folder (created; rerunning resumes).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML with sections audio, segment, features (and store: {float16: true}).")
@click.option("--features", "features", multiple=True, metavar="NAMES|FILE",
              help="Feature subset: comma-separated catalog names, or a YAML/JSON file with a "
                   "`features:` list (as `genaudio analyze` writes). Repeatable. Frame features "
                   "not in the subset are dropped unless the file lists `frame_features:`.")
@click.option("--segment-seconds", type=float, help="Segment length in seconds (default 5).")
@click.option("--ext", "extensions", help="Only files with these extensions in folders/globs, "
              "e.g. wav,flac,mp3 (default: every non-hidden file, so strays are reported).")
@click.option("--all-files", is_flag=True, help="Also take sidecar files (README.md, cover.jpg, "
              "notes.txt...) from folders; they end up in the errors table.")
@click.option("--address", envvar="RAY_ADDRESS", help="Ray cluster address (default: RAY_ADDRESS, "
              "else an embedded local Ray).")
@click.option("--num-cpus", type=click.IntRange(min=1), help="CPUs for the local Ray / max workers "
              "(default: all cores).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="GPU share of each extraction worker. > 0: Ray GPU actors compute the frame "
                   "features in torch, batched over segments (equal to the CPU path within 1e-4); "
                   "0: CPU actors only.")
@click.option("--float16", is_flag=True, help="Store frame matrices as float16 (half the size).")
@click.option("--strict", is_flag=True, help="Exit 1 if any file failed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(inputs, out, config_file, features, segment_seconds, extensions, all_files, address,
            num_cpus, gpus_per_worker, float16, strict, quiet):
    """Extract features of every INPUT file into a Parquet features store.

    \b
    INPUT is a folder (recursive), a glob ("data/**/*.wav", quoted), a text file list (one path
    a line) or a CSV/TSV list with a `path` and an optional `label` column. Labels default to the
    parent folder's name.

    \b
    Output (see docs/extract.md):
      OUT/segments/*.parquet  one row per segment: ids, summary columns, frames_<feature> matrices
      OUT/files.parquet       one row per input file, status ok/failed
      OUT/errors.parquet      one row per failed file: stage, error type, message
      OUT/manifest.json       config + hash, versions, counts, timings (written last)

    Rerunning the same command skips files already done; a changed config recomputes the store.
    Exits 0 when some files failed (they are listed in errors.parquet), 1 with --strict or when
    no file succeeded.
    """
    from genaudio import extract as ex
    from genaudio.config import load, load_yaml

    data = load_yaml(config_file) if config_file else {}
    if not isinstance(data.get("features", {}), dict):
        raise ConfigError(f"{config_file}: section features must be a mapping")
    if features:
        sub = _features_option(features)
        fdata = dict(data.get("features") or {})
        fdata["features"] = sub["features"]
        if "frame_features" in sub:
            fdata["frame_features"] = sub["frame_features"]
        else:
            frames = fdata.get("frame_features")
            if frames is None:
                from genaudio.config import FeatureConfig

                frames = FeatureConfig().frame_features
            fdata["frame_features"] = [f for f in frames if f in sub["features"]]
        data["features"] = fdata
    options = {"segment.seconds": segment_seconds, "float16": True if float16 else None}
    cfg = load(ex.ExtractConfig, data, overrides={k: v for k, v in options.items() if v is not None})
    exts = [e for e in (extensions or "").split(",") if e.strip()] or None

    res = ex.run_extract(list(inputs), out, config=cfg, address=address, num_cpus=num_cpus,
                         extensions=exts, all_files=all_files, progress=not quiet,
                         gpus_per_worker=gpus_per_worker)
    click.echo(res.summary())
    if res.files_failed:
        from genaudio import store

        errs = store.read_errors(res.out).to_pylist()
        click.echo(f"{res.files_failed} file(s) failed; details in {Path(res.out) / store.ERRORS}:")
        for e in errs[:10]:
            click.echo(f"  {e['path']}: [{e['stage']}] {e['error_type']}: {e['message'][:160]}")
        if len(errs) > 10:
            click.echo(f"  ... and {len(errs) - 10} more")
    if res.files_ok == 0:
        click.secho("error: no file succeeded", fg="red", err=True)
        sys.exit(1)
    if strict and res.files_failed:
        click.secho(f"error: {res.files_failed} file(s) failed (--strict)", fg="red", err=True)
        sys.exit(1)
