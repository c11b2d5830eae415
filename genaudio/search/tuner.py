"""Ray Tune wiring: OptunaSearch (define-by-run, persisted study) + ASHA, resources, resume.

:func:`run_tune` runs any function trainable that follows the session protocol
(:mod:`genaudio.search.session`: one report with a checkpoint per epoch, metric ``score``,
lower is better). :func:`genaudio.search.run_search` builds the real trainable on a features
store and calls it.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from genaudio.errors import ConfigError, SearchError
from genaudio.search.layout import EXPERIMENT, STUDY_FILE, STUDY_NAME, holds_search, tune_dir
from genaudio.search.session import METRIC


log = logging.getLogger(__name__)


def parse_duration(text: str | float | int | None) -> float | None:
    """``"4h"``, ``"90m"``, ``"30s"``, ``"1h30m"`` or a number of seconds -> seconds."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    import re

    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", s)
    if not parts or "".join(f"{a}{b}" for a, b in parts) != s.replace(" ", ""):
        raise ConfigError(f"cannot read time budget {text!r}; write e.g. 4h, 90m, 1h30m or 3600")
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(a) * unit[b] for a, b in parts)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Options of a search (YAML ``--config`` keys, and the CLI flags of the same name).

    Attributes
    ----------
    trials : int
        Number of trials (configurations) to run.
    epochs : int
        Maximum epochs per trial (ASHA's ``max_t``).
    time_budget_s : float or None
        Stop launching and running trials after this many seconds (or a duration such as ``4h``,
        ``90m``, ``1h30m``); ``None`` = no limit.
    cpus_per_trial : float
        CPUs reserved per trial.
    gpus_per_trial : float or None
        GPU share per trial (0.25, 0.5, 1, 2, ...); ``None`` = 0.5 when the cluster has GPUs,
        otherwise 0 (the same run works on CPU-only machines).
    gan_gpu_factor : float
        GAN trials ask for ``gpus_per_trial * gan_gpu_factor`` GPUs (two networks train at once).
    max_concurrent : int or None
        At most this many trials at once; ``None`` = as many as the resources allow.
    searcher : {"optuna", "random"}
        Optuna's TPE on the define-by-run space, or uniform random draws from the same space.
    scheduler : {"asha", "fifo"}
        ASHA stops bad trials at epoch rungs; ``fifo`` runs every trial to the end.
    grace_period : int
        Epochs every trial runs before ASHA may stop it.
    reduction_factor : int
        ASHA's eta: the top 1/eta of trials at a rung go on.
    max_failures : int
        Times a crashing trial (or one on a lost node) is retried from its last checkpoint.
    seed : int
        Seed of the sampler, of each trial's training and of the judge's real reference.
    judge_clips : int
        Clips the judge (:mod:`genaudio.quality`) generates at each judged epoch of a trial, and
        real clips in each half of the search's reference (held-out files).
    judge_seconds : float or None
        Length of judged clips; ``None``: 5 s, or the store's segment length when shorter.
    decoder_minutes : float
        Audio (minutes, at most; segments spread evenly over the training files, never the
        held-out ones) each trial's learned decoder trains on. The decoder itself is the space's
        ``encoder.decoder*`` options (EncoderConfig's); ``encoder: {decoder: griffinlim}`` trains none.
    space : dict
        Search-space overrides merged over :data:`genaudio.search.space.DEFAULT_SPACE`.
    """

    trials: int = 20
    epochs: int = 10
    time_budget_s: float | None = dataclasses.field(default=None, metadata={"parse": parse_duration})
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    gan_gpu_factor: float = 1.0
    max_concurrent: int | None = None
    searcher: str = "optuna"
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 3
    max_failures: int = 2
    seed: int = 0
    judge_clips: int = 16
    judge_seconds: float | None = None
    decoder_minutes: float = 20.0
    space: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.trials < 1:
            raise ConfigError(f"trials must be at least 1, got {self.trials}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError("time budget must be positive")
        if self.cpus_per_trial <= 0:
            raise ConfigError(f"cpus_per_trial must be positive, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None:
            _check_gpu_share(self.gpus_per_trial, "gpus_per_trial")
            _check_gpu_share(self.gpus_per_trial * self.gan_gpu_factor, "gpus_per_trial x gan_gpu_factor")
        if self.gan_gpu_factor <= 0:
            raise ConfigError("gan_gpu_factor must be positive")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError("max_concurrent must be at least 1")
        if self.searcher not in ("optuna", "random"):
            raise ConfigError(f"searcher must be optuna or random, got {self.searcher!r}")
        if self.scheduler not in ("asha", "fifo"):
            raise ConfigError(f"scheduler must be asha or fifo, got {self.scheduler!r}")
        if self.grace_period < 1 or self.reduction_factor < 2:
            raise ConfigError("grace_period must be >= 1 and reduction_factor >= 2")
        if self.judge_clips < 5:
            raise ConfigError(f"judge_clips must be at least 5 (for a standard error), got {self.judge_clips}")
        if self.judge_seconds is not None and self.judge_seconds <= 0:
            raise ConfigError("judge_seconds must be positive")
        if self.decoder_minutes <= 0:
            raise ConfigError(f"decoder_minutes must be positive, got {self.decoder_minutes}")
        if self.max_failures < -1:
            raise ConfigError("max_failures must be >= -1 (-1 retries forever)")


def _check_gpu_share(g: float, what: str) -> None:
    # Ray packs fractional GPUs only below 1; above 1 a trial needs whole GPUs.
    if g < 0 or (g > 1 and abs(g - round(g)) > 1e-9):
        raise ConfigError(f"{what} must be a fraction in [0, 1] or a whole number of GPUs, got {g:g}")


# ---------------------------------------------------------------------------------------------
# Resources


def gpu_share(cfg: SearchConfig) -> float:
    """The GPU share per trial: the configured one, or 0.5 if the cluster has GPUs, else 0."""
    if cfg.gpus_per_trial is not None:
        return float(cfg.gpus_per_trial)
    import ray

    return 0.5 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class TrialResources:
    """Resource function handed to ``tune.with_resources``: config -> placement group.

    GAN trials ask for ``gan_gpu_factor`` times the GPU share (they train two networks).
    A plain class (not a closure) so that Tune's experiment state pickles it for ``--resume``.
    """

    cpus: float
    gpus: float
    gan_gpu_factor: float = 1.0

    def request(self, config: dict) -> dict[str, float]:
        gpus = self.gpus * (self.gan_gpu_factor if config.get("model.family") == "gan" else 1.0)
        return {"CPU": self.cpus, "GPU": gpus}

    def __call__(self, config: dict):
        from ray.tune import PlacementGroupFactory

        return PlacementGroupFactory([self.request(config)])


def check_cluster_fits(res: TrialResources, *, families=("lstm",)) -> None:
    """Fail before any trial starts if no node can host a trial (it would wait forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for fam in families:
        need = res.request({"model.family": fam})
        if not any(n["Resources"].get("CPU", 0) >= need["CPU"] and n["Resources"].get("GPU", 0) >= need["GPU"]
                   for n in nodes):
            have = ", ".join(f"{n['Resources'].get('CPU', 0):g} CPU/{n['Resources'].get('GPU', 0):g} GPU"
                             for n in nodes)
            raise SearchError(
                f"no node can run a {fam} trial needing {need['CPU']:g} CPU and {need['GPU']:g} GPU "
                f"(nodes: {have}); lower --cpus-per-trial / --gpus-per-trial")


def cluster_slots(res: TrialResources, family: str = "lstm") -> int:
    """How many trials the alive nodes can run at once (at least 1).

    Used as the default ``max_concurrent``: Tune launches only one pending trial at a time with
    a search algorithm unless a concurrency limit is set, which would start trials one by one.
    """
    import ray

    need = res.request({"model.family": family})
    total = 0
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        r = n["Resources"]
        k = int(r.get("CPU", 0) // need["CPU"]) if need["CPU"] else 10**6
        if need["GPU"]:
            k = min(k, int(round(r.get("GPU", 0) / need["GPU"], 6)))
        total += max(0, k)
    return max(1, min(total, 10**4))


# ---------------------------------------------------------------------------------------------
# Tuner


class StudySearch(OptunaSearch):
    """OptunaSearch whose study outlives the driver (SQLite), made safe for ``--resume``.

    The searcher is restored from Tune's last snapshot, while the study on disk may be newer: a
    trial the snapshot still thinks running may be finished in the study. Reporting to it raises
    ``UpdateFinishedTrialError`` in Optuna, which would stop the resumed search; the study
    already holds that trial's outcome, so the late report is dropped.
    """

    def on_trial_result(self, trial_id: str, result: dict):
        import optuna

        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._completed_trials.add(trial_id)


def make_searcher(space_fn: Callable, cfg: SearchConfig, run_dir: Path, *, metric: str = METRIC,
                  mode: str = "min"):
    """OptunaSearch over ``space_fn`` with its study in ``RUN/study.db`` (SQLite).

    Only the driver writes the study: OptunaSearch runs in the driver and tells Optuna every
    result, so ``optuna-dashboard sqlite:///RUN/study.db`` and ``optuna.load_study`` can open it.
    ``searcher="random"`` uses Optuna's RandomSampler on the same space (same seed).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if cfg.searcher == "random":
        sampler = optuna.samplers.RandomSampler(seed=cfg.seed)
    else:
        # constant_liar: concurrent trials do not all get the same suggestion
        sampler = optuna.samplers.TPESampler(
            seed=cfg.seed, n_startup_trials=max(3, min(10, cfg.trials // 3)), constant_liar=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(run_dir / STUDY_FILE).resolve()}")
    return StudySearch(space_fn, metric=metric, mode=mode, sampler=sampler, storage=storage,
                       study_name=STUDY_NAME)


def make_scheduler(cfg: SearchConfig, *, metric: str = METRIC, mode: str = "min"):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if cfg.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", metric=metric, mode=mode, max_t=cfg.epochs,
                         grace_period=min(cfg.grace_period, cfg.epochs),
                         reduction_factor=cfg.reduction_factor)


def judged_epochs(cfg: SearchConfig) -> tuple[int, ...]:
    """Epochs at which a trial is judged: the first, every ASHA rung, and the last.

    ASHA compares trials only at its rungs (``grace_period * reduction_factor**k``), so between
    them the last judged value is reported again; judging every epoch would cost more than
    training with the default budgets.
    """
    rungs, t = {1, cfg.epochs}, min(cfg.grace_period, cfg.epochs)
    while t < cfg.epochs:
        rungs.add(t)
        t *= cfg.reduction_factor
    return tuple(sorted(rungs))


# ---------------------------------------------------------------------------------------------
# What the terminal shows while a search runs


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2g}" if v and abs(v) < 0.01 else f"{v:.3g}"
    return str(v)


def trial_summary(config: dict) -> str:
    """A trial's options in one short string: family, ``kind/dim`` of the encoder, groups switched
    on as ``+g``, then the model's and training's ``name=value`` (another family's options, encoder
    and score options, the search's own epochs and seed left out)."""
    fam = config.get("model.family")
    head = [str(fam)] if fam else []
    enc = config.get("encoder.kind")
    if enc:
        head.append(f"{enc}/{config.get('encoder.dim', '?')}")
    head += [f"+{k.split('.', 1)[1]}" for k, v in sorted(config.items())
             if k.startswith("features.") and k != "features.core" and v is True]
    rest = []
    for k, v in sorted(config.items()):
        section, _, name = k.partition(".")
        if k in ("epochs", "seed", "model.family") or section in ("features", "encoder", "score") \
                or (section in ("lstm", "gan") and fam and section != fam) or isinstance(v, (dict, list)):
            continue
        rest.append(f"{name or k}={_short(v)}")
    return " ".join(head + rest)


class TrialLog(Callback):
    """A Tune callback (made in :func:`run_tune`): one concise line per trial event (started,
    finished, stopped early, failed) and, optionally, a progress bar over the trial budget,
    in place of Tune's per-trial configuration tables."""

    def __init__(self, *, total: int, epochs: int, bar: bool = True):
        self.total, self.epochs, self.with_bar = total, epochs, bar
        self.started: dict[str, float] = {}
        self.best = math.inf
        self.bar = self._make_bar()

    def _make_bar(self):
        if not self.with_bar:
            return None
        from genaudio.infra import progress

        return progress(total=self.total, desc="search", unit="trial", leave=False)

    # Tune pickles its RunConfig (callbacks included) for --resume: the bar is made anew there
    def __getstate__(self):
        return {**self.__dict__, "bar": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.bar = self._make_bar()

    def _say(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.time()
        self._say(f"trial {trial.trial_id} started: {trial_summary(trial.config)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        score = result.get(METRIC)
        if isinstance(score, (int, float)) and score < self.best:
            self.best = float(score)
            if self.bar is not None:
                self.bar.set_postfix_str(f"best quality {self.best:.4g}")

    def _done(self, trial, what: str) -> None:
        secs = time.time() - self.started.get(trial.trial_id, time.time())
        self._say(f"trial {trial.trial_id} {what} ({secs:.0f} s)")
        if self.bar is not None:
            self.bar.update(1)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        ep = int(last.get("training_iteration") or 0)
        score = last.get(METRIC)
        text = f"quality {score:.4g}" if isinstance(score, (int, float)) else "not judged"
        if isinstance(last.get("quality_se"), (int, float)):  # the judge's standard error
            text += f" ± {last['quality_se']:.2g}"
        if last.get("status") == "nan":
            what = f"went non-finite at epoch {ep}: {last.get('reason') or ''}".rstrip(": ")
        elif ep < self.epochs:
            what = f"stopped early at epoch {ep}/{self.epochs}: {text}"
        else:
            what = f"finished {ep} epochs: {text}"
        self._done(trial, what)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._done(trial, f"failed after {int((trial.last_result or {}).get('training_iteration') or 0)} "
                          f"epoch(s); see {trial.path or 'its folder'}/error.txt")

    def on_experiment_end(self, trials, **info):
        if self.bar is not None:
            self.bar.close()


def run_tune(trainable: Callable, *, space_fn: Callable, run_dir: str | Path, cfg: SearchConfig,
             data: dict | None = None, resources: TrialResources | None = None, resume: bool = False,
             verbose: int = 1, callbacks: list | None = None, families=("lstm",)):
    """Run (or resume) a Tune experiment under ``RUN/tune`` and return its ``ResultGrid``.

    Parameters
    ----------
    trainable : callable
        Function trainable ``f(config, **data)`` following the session protocol.
    space_fn : callable
        Define-by-run function for OptunaSearch.
    data : dict, optional
        Large read-only inputs put once in the object store (``tune.with_parameters``): every
        trial gets the same object, not a copy read from disk.
    resources : TrialResources, optional
        Per-trial resources (default: ``cfg``'s CPUs and GPU share).
    resume : bool
        Continue the experiment in ``RUN/tune`` (``Tuner.restore``): finished trials are kept,
        unfinished ones continue from their last checkpoint, the searcher and its study go on,
        and so do the callbacks the experiment was started with (Tune restores them: ``callbacks``
        and ``verbose`` apply to a new search only).
    """
    from ray import tune

    run_dir = Path(run_dir).resolve()
    exp_dir = tune_dir(run_dir)
    if resources is None:
        resources = TrialResources(cfg.cpus_per_trial, gpu_share(cfg), cfg.gan_gpu_factor)
    check_cluster_fits(resources, families=families)

    fn = tune.with_parameters(trainable, **data) if data else trainable
    fn = tune.with_resources(fn, resources)
    # verbose 1: our one line per trial event + a bar; 2 and more: Tune's own tables as well. A
    # resumed run gets the callbacks Tune pickled with the experiment (the first run's log)
    log_cb = TrialLog(total=cfg.trials, epochs=cfg.epochs, bar=verbose == 1) if verbose >= 1 and not resume else None
    callbacks = list(callbacks or []) + ([log_cb] if log_cb is not None else [])

    if resume:
        if not tune.Tuner.can_restore(str(exp_dir)):
            raise SearchError(f"{run_dir} holds no search to resume (no {exp_dir}/experiment_state*.json)")
        tuner = tune.Tuner.restore(str(exp_dir), trainable=fn, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        if holds_search(run_dir):
            raise SearchError(f"{run_dir} already holds a search; use --resume to continue it "
                              "or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        searcher = make_searcher(space_fn, cfg, run_dir)
        tuner = tune.Tuner(
            fn,
            tune_config=tune.TuneConfig(
                search_alg=searcher, scheduler=make_scheduler(cfg), num_samples=cfg.trials,
                max_concurrent_trials=cfg.max_concurrent or cluster_slots(resources),
                time_budget_s=cfg.time_budget_s,
                reuse_actors=True),   # a finished trial's worker process takes the next one: no new process + torch import per trial
            param_space={"epochs": cfg.epochs, "seed": cfg.seed},
            run_config=tune.RunConfig(
                name=EXPERIMENT, storage_path=str(run_dir / "tune"), verbose=max(0, verbose - 1),
                failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
                checkpoint_config=tune.CheckpointConfig(
                    # 3, not 2: Tune forces an experiment snapshot each time a trial saved
                    # num_to_keep checkpoints, a cost paid every epoch with small values
                    num_to_keep=3, checkpoint_score_attribute=METRIC, checkpoint_score_order="min"),
                callbacks=callbacks or None,
                stop={"training_iteration": cfg.epochs}),
        )
    t0 = time.time()
    # Tune's newer console output prints an experiment table and paths even at verbose=0; below
    # -v our TrialLog speaks instead, so the older (silent at 0) output is chosen for this call
    new_output = os.environ.get("RAY_AIR_NEW_OUTPUT")
    if verbose < 2:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        grid = tuner.fit()
    finally:
        if new_output is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = new_output
        if log_cb is not None and log_cb.bar is not None:
            log_cb.bar.close()
    log.info("search finished in %.1f s", time.time() - t0)
    return grid
