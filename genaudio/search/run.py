"""The search driver: validate everything, read the store once, run the Tuner, write the results.

Everything that can be checked is checked before the first trial starts: the store (a features
store with the frame columns the space needs), the space (domains, groups, families, kinds), and
one training/encoder config per family built from the space's bounds.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import yaml

from genaudio.config import from_dict, to_dict
from genaudio.errors import ConfigError, Interrupted, SearchError, StoreError
from genaudio.infra import connect_ray
from genaudio.search.space import Choice, Fixed, FloatRange, IntRange, SearchSpace, build_space, define_by_run
from genaudio.search.layout import BEST_FILE, STATE_FILE, STUDY_FILE, holds_search, read_state, write_state
from genaudio.search.tuner import SearchConfig, TrialResources, gpu_share, run_tune
from genaudio.store import (FRAME_PREFIX, IDENTITY_COLUMNS, atomic_write_bytes, content_key, read_manifest,
                            segments_schema)

#: encoder kinds searched on a features store's frames (mel's dim is fixed to n_mels; mulaw codes waveforms)
FRAME_ENCODERS = ("pca", "autoencoder")


# ---------------------------------------------------------------------------------------------
# Store checks


def read_subset(path: str | Path | None) -> set[str] | None:
    """Feature names of a subset file (YAML/JSON ``features:`` list, or a plain list)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"subset file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML/JSON: {e}") from None
    feats = data.get("features", data.get("subset")) if isinstance(data, dict) else data
    if not isinstance(feats, list) or not all(isinstance(f, str) for f in feats):
        raise ConfigError(f"{p}: expected a `features:` list of feature names")
    return set(feats)


def store_frame_features(store: str | Path, subset: set[str] | None = None) -> tuple[dict, dict[str, str]]:
    """The store's manifest and ``{frame feature: group}`` for frame columns actually present.

    Raises :class:`StoreError` when DIR is not a features store or has no frame matrices.
    """
    manifest = read_manifest(store)
    if manifest.get("kind", "features") != "features":
        raise StoreError(f"{store} is a {manifest.get('kind')!r} store; search needs a features store "
                         "(`genaudio extract` output)")
    feats = manifest.get("features") or {}
    if not feats:
        raise StoreError(f"{store}/manifest.json lists no features; re-run `genaudio extract`")
    names = set(segments_schema(store).names)
    missing_ids = [c for c in IDENTITY_COLUMNS if c not in names]
    if missing_ids:
        raise StoreError(f"{store}: the segments table lacks identity column(s) {', '.join(missing_ids)}")
    frames = {f: str(info.get("group", "other")) for f, info in feats.items()
              if info.get("frame") and FRAME_PREFIX + f in names}
    if subset is not None:
        core_like = {f for f in frames if frames[f] == "spectrum"}
        frames = {f: g for f, g in frames.items() if f in subset or f in core_like}
    if not frames:
        raise StoreError(f"{store} has no frame-matrix columns ({FRAME_PREFIX}*); the search trains on "
                         "frame matrices: extract with frame features (the default)")
    return manifest, frames


def _extremes(d) -> list:
    if isinstance(d, Choice):
        return list(d.values)
    if isinstance(d, (IntRange, FloatRange)):
        return [d.low, d.high]
    return [d.value]


def check_trainable_configs(space: SearchSpace, cfg: SearchConfig) -> None:
    """Build train/encoder configs from the space's bounds: bad values fail before any trial.

    Each bound and choice is checked alone (other options at their defaults, so the message names
    the culprit), then the all-low and all-high corners of each family together (cross-option
    rules such as ``gan.patch >= 2**gan.layers``).
    """
    from genaudio.search.trainable import encoder_options, train_config

    def check(flat: dict, what: str) -> None:
        try:
            train_config(flat)
            encoder_options(flat)
        except ConfigError as e:
            raise ConfigError(f"search space {what}: {e}") from None

    for fam in space.families:
        # this family's section and every section not conditional on the family (autoencoder.*,
        # conditional on encoder.kind, is checked with every family)
        conds = {n: space.condition(n) for n, _ in space.params}
        own = [(n, d) for n, d in space.params
               if conds[n] is None or conds[n][0] != "model.family" or conds[n][1] == fam]
        fixed = {n: d.value for n, d in own if isinstance(d, Fixed)}
        common = {"model.family": fam, "epochs": cfg.epochs, "seed": cfg.seed}
        for name, d in own:
            for v in _extremes(d):
                check({**common, **fixed, name: v}, f"{name}={v!r} ({fam})")
        for corner in (0, -1):
            flat = {**common, **{n: _extremes(d)[corner] for n, d in own}}
            check(flat, f"({fam}, all {'lowest' if corner == 0 else 'highest'} values together)")


def prepare_space(store: str | Path, cfg: SearchConfig, subset=None) -> tuple[dict, dict, SearchSpace]:
    manifest, frames = store_frame_features(store, read_subset(subset) if not isinstance(subset, set) else subset)
    space = build_space(cfg.space, frame_features=frames, encoder_kinds=FRAME_ENCODERS)
    check_trainable_configs(space, cfg)
    return manifest, frames, space


def show_space(store: str | Path, cfg: SearchConfig, *, subset=None) -> str:
    """The resolved space as a table and as the YAML that would reproduce it."""
    _, _, space = prepare_space(store, cfg, subset)
    return (space.describe() + "\n\n# as YAML (put under `space:` in --config to change it):\n"
            + yaml.safe_dump({"space": space.to_dict()}, sort_keys=False))


# ---------------------------------------------------------------------------------------------
# The summary the CLI prints


@dataclasses.dataclass
class SearchSummary:
    run_dir: str
    rows: list
    best: dict | None
    wall_s: float

    def text(self) -> str:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        lines = [f"search: {len(self.rows)} trials in {self.wall_s:.0f} s ("
                 + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ")"]
        prev_group = None
        for r in self.rows[:5]:
            fam, kind = r.get("param.model.family", ""), r.get("param.encoder.kind", "")
            tie = "=" if r.get("tie_group") is not None and r.get("tie_group") == prev_group else " "
            prev_group = r.get("tie_group")
            lines.append(f"  #{r['rank'] or '-'}{tie} {r['trial_id']} {fam:<4} {kind:<11} {r['status']:<9} "
                         f"quality={_fmt(r.get('quality'))} +- {_fmt(r.get('quality_se'))} "
                         f"(decoder alone {_fmt(r.get('decoder_quality'))}) epochs={r['epochs']}")
        if any(r.get("quality") is not None for r in self.rows):
            lines.append("  (quality: the judge's KID vs held-out real clips, lower is better; '=' within 2 "
                         "standard errors of its tie group's first trial; real vs real in judge/reference.json)")
        if self.best:
            lines.append(f"best: trial {self.best['trial_id']} -> {self.run_dir}/{BEST_FILE} "
                         f"(genaudio train --config {self.run_dir}/{BEST_FILE})")
        lines.append(f"results: {self.run_dir}/results.parquet, results.csv; "
                     f"study: optuna-dashboard sqlite:///{self.run_dir}/{STUDY_FILE}")
        return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


# ---------------------------------------------------------------------------------------------
# Driver


def run_search(store: str | Path, run_dir: str | Path, cfg: SearchConfig | None = None, *, subset=None,
               resume: bool = False, address: str | None = None, num_cpus: int | None = None,
               verbose: int = 1) -> SearchSummary:
    """Run (or resume) a search of ``store`` into ``run_dir``; write results and ``best.yaml``.

    Parameters
    ----------
    store : path
        A features store (``genaudio extract`` output).
    run_dir : path
        The run folder (see docs/search.md for its layout).
    cfg : SearchConfig, optional
        Options and space overrides; on ``resume`` the saved ones are used when ``None``.
    subset : path or set of str, optional
        Feature subset: only frame features in it (plus the spectral core) are searched.
    resume : bool
        Continue an interrupted search in ``run_dir`` (``Tuner.restore``).
    """

    from genaudio.search.results import UNFINISHED, collect_results, write_results
    from genaudio.search.trainable import (decoder_audio_key, decoder_data, judge_data, search_trainable,
                                           store_data)

    run_dir = Path(run_dir).resolve()
    store = Path(store).resolve()
    state = read_state(run_dir) if resume else {}
    if resume:
        if Path(state["store"]) != store:
            raise SearchError(f"{run_dir} searched {state['store']}, not {store}")
        saved = from_dict(SearchConfig, {k: v for k, v in state["config"].items() if k != "config_hash"})
        if cfg is not None and to_dict(cfg) != to_dict(saved):
            raise SearchError("--resume continues the search as it was started; drop the other options "
                              f"(saved options are in {run_dir / STATE_FILE})")
        cfg = saved
        subset = set(state["subset"]) if state.get("subset") is not None else None
    cfg = cfg or SearchConfig()
    subset_set = read_subset(subset) if subset is not None and not isinstance(subset, set) else subset
    manifest, frames, space = prepare_space(store, cfg, subset_set)
    if resume and state.get("store_key") not in (None, content_key(manifest)):
        # the held-out files, the judge's reference and the cached codes follow from the store
        raise SearchError(f"{store} changed since this search started (extracted again, or files added or "
                          "dropped): its trials were judged on the store as it was; start a new search with "
                          "another --out")
    if not resume:
        if holds_search(run_dir):
            raise SearchError(f"{run_dir} already holds a search; use --resume to continue it or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        write_state(run_dir, {"store": str(store), "config": to_dict(cfg), "space": space.to_dict(),
                              "subset": sorted(subset_set) if subset_set is not None else None,
                              "store_config_hash": manifest.get("config_hash"), "store_key": content_key(manifest),
                              "started": time.time()})

    connect_ray(address, num_cpus=num_cpus)
    resources = TrialResources(cfg.cpus_per_trial, gpu_share(cfg), cfg.gan_gpu_factor)
    # read once in the driver: only the columns the space can use; Tune puts it in the object store
    used = [space.core] + [f for f, g in frames.items() if g in space.optional_groups and f != space.core]
    data = store_data(store, manifest, used, frames, run_dir)
    data["judge"] = judge_data(data["frames"], store, manifest, cfg, run_dir)
    # decoded once here, used by every trial that fits an encoder with a learned decoder
    data["decoder_audio"] = decoder_data(data["frames"], store, manifest, cfg, space,
                                         log=print if verbose else None)
    data["store"]["decoder_audio"] = decoder_audio_key(data["decoder_audio"], cfg)
    t0 = time.time()
    run_tune(search_trainable, space_fn=define_by_run(space), run_dir=run_dir, cfg=cfg, data=data,
             resources=resources, resume=resume, verbose=verbose, families=space.families)
    rows = collect_results(run_dir, epochs=cfg.epochs, resources=resources)
    write_results(run_dir, rows)   # also after an interruption: the table as it stands
    unfinished = [r for r in rows if r["status"] in UNFINISHED]
    if unfinished or (cfg.time_budget_s is None and len(rows) < cfg.trials):
        # Ctrl-C: Tune saved the experiment and returned as if it had ended
        raise Interrupted(f"the search stopped with {len(rows) - len(unfinished)} of {cfg.trials} trials ended; "
                          f"continue it with `genaudio search {store} --out {run_dir} --resume`")
    best = next((r for r in rows if r["rank"] == 1), None)
    if best is not None:
        write_best(run_dir, best, cfg, data["store"])
    return SearchSummary(str(run_dir), rows, best, time.time() - t0)


def write_best(run_dir: Path, row: dict, cfg: SearchConfig, store: dict) -> dict:
    """``RUN/best.yaml``: the best trial's TrainConfig, for ``genaudio train ENC --config``; its
    encoded store (the cache entry) and the search details sit in comments at the top."""
    from genaudio.search.trainable import best_config, cache_key, trial_encoder_config

    params = {k[len("param."):]: v for k, v in row.items()
              if k.startswith("param.") and v is not None and not (isinstance(v, float) and math.isnan(v))}
    params.update(epochs=cfg.epochs, seed=cfg.seed)
    doc = best_config(params)
    enc_cfg = trial_encoder_config(params, store)
    entry = Path(store["cache_dir"]) / cache_key(store, enc_cfg)
    groups = sorted(k.split(".", 1)[1] for k, v in params.items()
                    if k.startswith("features.") and k != "features.core" and v is True)
    header = (f"# best trial {row['trial_id']} of {run_dir}: quality {_fmt(row.get('quality'))} "
              f"+- {_fmt(row.get('quality_se'))} (lower is better), status {row['status']}\n"
              f"# features: {params.get('features.core')} + groups {', '.join(groups) or '(none)'}; "
              f"encoder {enc_cfg['kind']} dim {enc_cfg['dim']}\n"
              f"# encoded store (codes of that encoder): {entry}\n"
              f"# reproduce: genaudio train {entry} --config {run_dir / BEST_FILE} --out runs/best\n")
    atomic_write_bytes(run_dir / BEST_FILE, (header + yaml.safe_dump(doc, sort_keys=False)).encode())
    return doc


__all__ = ["run_search", "show_space", "SearchSummary", "write_best",
           "prepare_space", "store_frame_features"]
