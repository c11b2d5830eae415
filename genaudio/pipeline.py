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
from genaudio.errors import ConfigError, Interrupted
from genaudio.extract import ExtractConfig
from genaudio.search import layout as search_layout
from genaudio.search.tuner import SearchConfig
from genaudio.store import atomic_write_bytes, atomic_write_json, content_key, read_manifest

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


class _RunFolder:
    """One pipeline run folder while it runs: its stage folders, ``pipeline.json`` (what is done,
    with which key) and the results so far."""

    def __init__(self, run: Path, log: Callable[[str], None]):
        self.path, self.log = run, log
        self.store, self.analysis, self.encoded, self.search, self.review = (
            run / "features", run / "analysis", run / "encoded", run / "search", run / "review")
        self.state = _read_state(run)
        self.results: list[StageResult] = []

    def is_done(self, name: str, key: str, output: Path) -> bool:
        """Done before with the same key, and its output is still there (then recorded as skipped)."""
        entry = self.state.get(name, {})
        if entry.get("status") == "done" and entry.get("key") == key and output.exists():
            self.results.append(StageResult(name, "skipped", 0.0))
            self.log(f"[{name}] already done")
            return True
        return False

    def mark(self, name: str, entry: dict) -> None:
        self.state[name] = entry
        atomic_write_json(self.path / STATE_FILE, self.state)

    def done(self, name: str, key: str, t0: float, status: str = "done", detail: str = "") -> None:
        seconds = time.perf_counter() - t0
        self.mark(name, {"status": "done", "key": key, "seconds": round(seconds, 2), "finished": time.time()})
        self.results.append(StageResult(name, status, seconds, detail))
        self.log(f"[{name}] {status} in {seconds:.1f} s{': ' + detail if detail else ''}")


def _read_state(run: Path) -> dict:
    path = run / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


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
    cfg = cfg or PipelineConfig()
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    path = Path(run).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path / "config.yaml", commented_yaml(to_sections(cfg)).encode())
    r = _RunFolder(path, log)
    if "extract" in stages:
        _extract(r, inputs, cfg.extract, address=address, num_cpus=num_cpus, gpus_per_worker=gpus_per_worker)
    if "analyze" in stages:
        _analyze(r, cfg.analyze)
    if "encode" in stages:
        _encode(r, cfg.encode)
    if "search" in stages:
        _search(r, cfg.search, address=address, num_cpus=num_cpus, verbose=verbose)
    if "review" in stages:
        _review(r, cfg.review)
    return r.results


def _extract(r: _RunFolder, inputs, cfg: ExtractConfig, **ray) -> None:
    """Always runs: the extraction skips the files the store already holds by itself."""
    from genaudio.extract import run_extract

    t0 = time.perf_counter()
    r.log(f"[extract] {', '.join(map(str, inputs))} -> {r.store}")
    res = run_extract(list(inputs), r.store, config=cfg, **ray)
    if res.files_ok == 0:
        raise ConfigError(f"extraction produced no segments (every input file failed); see {r.store / 'errors.parquet'}")
    r.done("extract", cfg.hash(), t0, detail=f"{res.files_ok} files ok, {res.files_failed} failed, {res.segments} segments")


def _analyze(r: _RunFolder, cfg: AnalyzeConfig) -> None:
    from genaudio.analyze import analyze

    t0 = time.perf_counter()
    key = config_hash({"store": content_key(read_manifest(r.store)), "analyze": to_dict(cfg)})
    if r.is_done("analyze", key, r.analysis / "report.html"):
        return
    r.log(f"[analyze] {r.store} -> {r.analysis}")
    analyze(r.store, r.analysis, cfg)
    r.done("analyze", key, t0, detail=str(r.analysis / "report.html"))


def _encode(r: _RunFolder, cfg: EncoderConfig) -> None:
    from genaudio.encoders.run import run_encode
    from genaudio.encoders.store import config_for_store

    t0 = time.perf_counter()
    enc_cfg = config_for_store(r.store, kind=cfg.kind, dim=cfg.dim, groups=cfg.groups, config=cfg)
    key = config_hash({"store": content_key(read_manifest(r.store)), "encode": to_dict(enc_cfg)})
    if r.is_done("encode", key, r.encoded / "manifest.json"):
        return
    r.log(f"[encode] {enc_cfg.kind} dim {enc_cfg.dim} -> {r.encoded}")
    run_encode([r.store], r.encoded, enc_cfg, overwrite=True, progress=False, log=r.log)
    r.done("encode", key, t0, detail=str(r.encoded))


def _search(r: _RunFolder, cfg: SearchConfig, *, verbose: int, **ray) -> None:
    """Runs, resumes an interrupted search with the same key, or refuses one with another key."""
    from genaudio.search.run import run_search

    t0 = time.perf_counter()
    subset = r.analysis / "subset.yaml"
    subset = subset if subset.is_file() else None
    key = config_hash({"store": content_key(read_manifest(r.store)), "search": to_dict(cfg),
                       "subset": subset.read_text() if subset else None})
    if r.is_done("search", key, r.search / search_layout.RESULTS_PARQUET):
        return
    # a search that failed before its experiment existed (a check, Ray's start) starts anew
    started = search_layout.holds_search(r.search)
    if started and r.state.get("search", {}).get("key") not in (None, key):
        raise ConfigError(f"{r.search} holds a search with other options; move it away to start anew")
    r.mark("search", {"status": "running", "key": key})
    r.log(f"[search] {'resuming' if started else 'starting'} {cfg.trials} trials -> {r.search}")
    try:
        summary = run_search(r.store, r.search, None if started else cfg, subset=subset, resume=started,
                             verbose=verbose, **ray)
    except Interrupted:
        # the stage stays "running": the same command resumes it
        raise Interrupted("the search stopped before its end; run the same `genaudio pipeline` command "
                          "again to resume it") from None
    best = summary.best
    r.done("search", key, t0, status="resumed" if started else "done",
           detail=f"{len(summary.rows)} trials" + (f", best trial {best.get('trial_id')}" if best else ""))


def _review(r: _RunFolder, cfg: ReviewConfig) -> None:
    """Always runs: the report shows the search as it is now."""
    from genaudio import review as review_mod

    t0 = time.perf_counter()
    r.log(f"[review] {r.search} -> {r.review}")
    review_run = review_mod.load_run(r.search)
    review_mod.render_table(review_run, top=cfg.top)
    analysis = r.analysis if (r.analysis / "report.html").is_file() else None
    path = review_mod.build_report(review_run, r.review, top=cfg.top, clips=cfg.clips, seconds=cfg.seconds,
                                   analyze=analysis)
    r.done("review", "always", t0, detail=str(path))
