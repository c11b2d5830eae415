"""The whole pipeline in one call: extract -> analyze -> encode -> search -> review.

Every stage writes into its own folder of the run, and a rerun skips what is already done::

    RUN/
      config.yaml      the resolved pipeline configuration (every stage's options)
      pipeline.json    per stage: status, the key of its inputs and options, seconds
      features/        genaudio extract   (resumable per file)
      analysis/        genaudio analyze   (importance, plots, report.html, subset.yaml)
      encoded/         genaudio encode    (codes, encoder, metrics, WAV pairs to listen to)
      search/          genaudio search    (Tune experiment, Optuna study, results, best.yaml)
      review/          genaudio review    (report.html with players for the best trials)

A stage is skipped when ``pipeline.json`` records it done with the same key (its options and the
identity of its input); an interrupted search is resumed (``Tuner.restore``); extraction always
runs, since it skips the files it already holds by itself.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from genaudio.analyze.data import AnalyzeConfig
from genaudio.config import commented_yaml, config_hash, to_dict
from genaudio.encoders.base import EncoderConfig
from genaudio.errors import ConfigError
from genaudio.extract import ExtractConfig
from genaudio.search import layout as search_layout
from genaudio.search.tuner import SearchConfig
from genaudio.store import atomic_write_bytes, atomic_write_json

STAGES = ("extract", "analyze", "encode", "search", "review")
STATE_FILE = "pipeline.json"


@dataclasses.dataclass(frozen=True)
class ReviewConfig:
    """What the pipeline's review report shows.

    Attributes
    ----------
    top : int
        Trials shown in detail (configurations, learning curves, generated clips).
    clips : int
        Generated clips per top trial, and as many real held-out clips to compare with.
    seconds : float
        Length of each clip in seconds.
    """

    top: int = 5
    clips: int = 2
    seconds: float = 4.0

    def __post_init__(self):
        if self.top < 1 or self.clips < 0 or self.seconds <= 0:
            raise ConfigError("review: top must be >= 1, clips >= 0 and seconds > 0")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Every stage's options: one YAML file sets them all (``genaudio config --print-defaults``).

    Attributes
    ----------
    extract : ExtractConfig
        Decoding, segmentation and the features computed (``genaudio extract``).
    analyze : AnalyzeConfig
        Feature importance (``genaudio analyze``).
    encode : EncoderConfig
        The encoder fitted for listening and rate-distortion (``genaudio encode``); its analysis
        parameters follow the features store.
    search : SearchConfig
        The joint search over feature groups, encoders and models (``genaudio search``).
    review : ReviewConfig
        The review report (``genaudio review --report``).
    """

    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    analyze: AnalyzeConfig = dataclasses.field(default_factory=AnalyzeConfig)
    encode: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    review: ReviewConfig = dataclasses.field(default_factory=ReviewConfig)


def defaults_yaml() -> str:
    """The complete default configuration as commented YAML."""
    head = ("# genaudio configuration: every stage's options with their defaults.\n"
            "# Pass it to `genaudio pipeline --config FILE`; a file may set only some options.\n"
            "# The extract, search and analyze sections are also accepted by their own commands.\n\n")
    return head + commented_yaml(to_sections(PipelineConfig()))


def to_sections(cfg: PipelineConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in STAGES}


# ---------------------------------------------------------------------------------------------
# Running


@dataclasses.dataclass
class StageResult:
    name: str
    status: str  # "done" | "skipped" | "resumed"
    seconds: float
    detail: str = ""


def _read_state(run: Path) -> dict:
    path = run / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def _store_key(store: Path) -> str:
    """Identity of a features store's content: its config hash and row counts."""
    manifest = json.loads((store / "manifest.json").read_text())
    return config_hash({"config": manifest.get("config_hash"), "counts": manifest.get("counts")})


def run_pipeline(inputs: Sequence[str | Path], run: str | Path, cfg: PipelineConfig | None = None, *,
                 address: str | None = None, num_cpus: int | None = None,
                 stages: Sequence[str] = STAGES, log: Callable[[str], None] = print,
                 gpus_per_worker: float = 0.0, verbose: int = 1) -> list[StageResult]:
    """Run the stages in order into ``run``, skipping work already done.

    Parameters
    ----------
    inputs : sequence of paths
        Audio files, folders (recursive), globs or file lists, as ``genaudio extract``.
    run : path
        The run folder (layout in the module docstring).
    cfg : PipelineConfig
    address : str, optional
        A Ray cluster; default ``RAY_ADDRESS``, else an embedded local Ray.
    stages : sequence of str
        The stages to run (in pipeline order); later stages need the earlier stages' output.
    gpus_per_worker : float
        GPU share of each extraction worker (see :func:`genaudio.extract.run_extract`).
    verbose : int
        The search's terminal output: 0 none, 1 one line per trial event and a progress bar,
        2 also Ray Tune's own status tables.

    Returns
    -------
    list of StageResult
    """
    from genaudio import review as review_mod
    from genaudio.analyze import analyze
    from genaudio.encoders.run import run_encode
    from genaudio.encoders.store import config_for_store
    from genaudio.extract import run_extract
    from genaudio.search.run import run_search

    cfg = cfg or PipelineConfig()
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    run = Path(run).expanduser().resolve()
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run / "config.yaml", commented_yaml(to_sections(cfg)).encode())
    state = _read_state(run)
    results: list[StageResult] = []
    store, analysis, encoded, search_dir, review_dir = (run / "features", run / "analysis", run / "encoded",
                                                        run / "search", run / "review")

    def done(name: str, key: str, t0: float, status: str = "done", detail: str = "") -> None:
        state[name] = {"status": "done", "key": key, "seconds": round(time.perf_counter() - t0, 2),
                       "finished": time.time()}
        atomic_write_json(run / STATE_FILE, state)
        results.append(StageResult(name, status, time.perf_counter() - t0, detail))
        log(f"[{name}] {status} in {time.perf_counter() - t0:.1f} s{': ' + detail if detail else ''}")

    def is_done(name: str, key: str) -> bool:
        return state.get(name, {}).get("status") == "done" and state[name].get("key") == key

    if "extract" in stages:
        t0 = time.perf_counter()
        log(f"[extract] {', '.join(map(str, inputs))} -> {store}")
        res = run_extract(list(inputs), store, config=cfg.extract, address=address, num_cpus=num_cpus,
                          gpus_per_worker=gpus_per_worker)
        if res.files_ok == 0:
            raise ConfigError("extraction produced no segments (every input file failed); see "
                              f"{store / 'errors.parquet'}")
        done("extract", cfg.extract.hash(), t0, detail=f"{res.files_ok} files ok, {res.files_failed} failed, "
                                                      f"{res.segments} segments")

    if "analyze" in stages:
        t0 = time.perf_counter()
        key = config_hash({"store": _store_key(store), "analyze": to_dict(cfg.analyze)})
        if is_done("analyze", key) and (analysis / "report.html").is_file():
            results.append(StageResult("analyze", "skipped", 0.0))
            log("[analyze] already done")
        else:
            log(f"[analyze] {store} -> {analysis}")
            analyze(store, analysis, cfg.analyze)
            done("analyze", key, t0, detail=str(analysis / "report.html"))

    if "encode" in stages:
        t0 = time.perf_counter()
        enc_cfg = config_for_store(store, kind=cfg.encode.kind, dim=cfg.encode.dim, groups=cfg.encode.groups,
                                   config=cfg.encode)
        key = config_hash({"store": _store_key(store), "encode": to_dict(enc_cfg)})
        if is_done("encode", key) and (encoded / "manifest.json").is_file():
            results.append(StageResult("encode", "skipped", 0.0))
            log("[encode] already done")
        else:
            log(f"[encode] {enc_cfg.kind} dim {enc_cfg.dim} -> {encoded}")
            run_encode([store], encoded, enc_cfg, overwrite=True, progress=False, log=log)
            done("encode", key, t0, detail=str(encoded))

    if "search" in stages:
        t0 = time.perf_counter()
        subset = analysis / "subset.yaml"
        subset = subset if subset.is_file() else None
        key = config_hash({"store": _store_key(store), "search": to_dict(cfg.search),
                           "subset": subset.read_text() if subset else None})
        if is_done("search", key) and (search_dir / search_layout.RESULTS_PARQUET).is_file():
            results.append(StageResult("search", "skipped", 0.0))
            log("[search] already done")
        else:
            started = (search_dir / search_layout.STATE_FILE).is_file()
            if started and state.get("search", {}).get("key") not in (None, key):
                raise ConfigError(f"{search_dir} holds a search with other options; move it away to start anew")
            state["search"] = {"status": "running", "key": key}
            atomic_write_json(run / STATE_FILE, state)
            log(f"[search] {'resuming' if started else 'starting'} {cfg.search.trials} trials -> {search_dir}")
            summary = run_search(store, search_dir, None if started else cfg.search, subset=subset,
                                 resume=started, address=address, num_cpus=num_cpus, verbose=verbose)
            best = summary.best
            done("search", key, t0, status="resumed" if started else "done",
                 detail=f"{len(summary.rows)} trials" + (f", best trial {best.get('trial_id')}" if best else ""))

    if "review" in stages:
        t0 = time.perf_counter()
        log(f"[review] {search_dir} -> {review_dir}")
        review_run = review_mod.load_run(search_dir)
        review_mod.render_table(review_run, top=cfg.review.top)
        path = review_mod.build_report(review_run, review_dir, top=cfg.review.top, clips=cfg.review.clips,
                                       seconds=cfg.review.seconds,
                                       analyze=analysis if (analysis / "report.html").is_file() else None)
        done("review", "always", t0, detail=str(path))
    return results
