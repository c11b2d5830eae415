"""The judge: how far a set of audio clips is from real music, comparable across everything.

One number answers "does this sound like the music it learned from?" for every trial of a search,
whatever its encoder kind, code size or model family, and for any folder of clips:

- **Space.** genaudio's compact descriptors of each clip (:func:`judge_features`: the default
  features except the raw high-dimensional matrices in :data:`EXCLUDED_FEATURES`; ~690 summary
  columns: statistics of MFCC, chroma, spectral shape and contrast, tonnetz, loudness, onsets,
  tempo and beats over the clip), z-scored with a :class:`FeatureSpace` that is fixed once (from a
  features store's real rows, or from the reference clips) and clipped to +-``Z_CLIP`` so that a
  near-constant column cannot dominate; each column is weighted by :func:`feature_weights` so
  that a feature counts as the square root of its column count.
- **Estimator.** KID (Binkowski et al. 2018): the unbiased estimate of the squared maximum mean
  discrepancy with the cubic polynomial kernel ``k(a, b) = (a.b / d + 1)^3``. Unlike a Frechet
  distance it has no bias that depends on the number of clips, and it is sound with tens of clips
  in thousands of dimensions (a Frechet distance there is dominated by the covariance traces).
  0 means "indistinguishable from the reference"; it can be slightly negative by chance.
- **Standard error.** The two-sample delete-one jackknife of the U-statistic (Arvesen 1969): each
  clip of either set left out in turn, from the kernel matrices' row sums (no refits).
- **Reference.** A :class:`Reference` holds two disjoint halves of real clips, split by file
  (``anchor`` and ``other``), of the same count and length. A candidate is scored against the
  anchor; ``real_vs_real`` is the other half scored the same way, so a result reads "this far from
  real music, where real music is this far from itself".

See docs/quality.md for the choices and their measured discrimination.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from genaudio.errors import QualityError

#: Standardised feature values are clipped to this many standard deviations: with a few dozen real
#: clips some columns are all but constant, and a generated value divided by that spread would let
#: one column outweigh thousands. A value this far off is simply "maximally off".
Z_CLIP = 10.0
#: Fewest clips per set: the jackknife needs 3, and below ~5 the SE is itself unreliable.
MIN_CLIPS = 5
#: Default features the judge leaves out: raw high-dimensional matrices (128 log-mel bands, the
#: 128-band long-term spectrum, 384 tempogram lags) that are 85% of the summary columns, carry what
#: the compact descriptors (MFCC, onsets, tempo, beats) already summarise, and would dominate the
#: kernel's dot product: with them, reconstructions and frame-shuffled music were within 1.6 SE of
#: real music at 64 clips; without them, 5-7 SE apart (docs/quality.md).
EXCLUDED_FEATURES = ("log_mel", "ltas_mel", "tempogram")


# ---------------------------------------------------------------------------------------------
# Features and the fixed space


def judge_features(config=None) -> tuple[str, ...]:
    """Catalog names of the features the judge compares: the defaults less :data:`EXCLUDED_FEATURES`."""
    from genaudio.features import default_features

    return tuple(f for f in default_features(config) if f not in EXCLUDED_FEATURES)


def clip_features(clips: Sequence[np.ndarray], sr: int, *, config=None,
                  features=None) -> tuple[np.ndarray, list[str]]:
    """genaudio summary features of each clip.

    Parameters
    ----------
    clips : sequence of ndarray (samples,)
        Mono audio, float.
    sr : int
        Sample rate (Hz) of every clip.
    config : FeatureConfig, optional
    features : iterable of str, optional
        Catalog names; default :func:`judge_features`.

    Returns
    -------
    X : ndarray (n_clips, n_columns) float64
        May hold non-finite values (a silent or broken clip); :meth:`Reference.score` counts them.
    columns : list of str
        Summary column names (``<feature>_<dim>_<stat>``), identical for every clip.
    """
    from genaudio.features import compute, summarize

    features = tuple(features or judge_features(config))
    rows, columns = [], None
    for y in clips:
        s = summarize(compute(np.asarray(y, np.float32), int(sr), config=config, features=features),
                      config=config)
        if columns is None:
            columns = list(s)
        rows.append([s.get(c, np.nan) for c in columns])
    return np.asarray(rows, np.float64).reshape(len(rows), len(columns or [])), columns or []


def feature_weights(columns: Sequence[str]) -> np.ndarray:
    """Weight of each summary column: ``n_f ** -0.25`` for a feature with ``n_f`` columns,
    scaled to a mean square of 1.

    A feature then weighs as the square root of its size in the kernel's dot product, not in
    proportion to it: MFCC's 180 columns still count more than one tempo value, but chroma's three
    variants or the contrast bands cannot drown the onset and loudness statistics. On the
    development corpus this separated reconstructions from frame-shuffled music by 4.7-7.9 SE
    where equal column weights gave 2.7-7.4 (docs/quality.md).
    """
    from collections import Counter

    from genaudio.store import parse_summary_column

    feats = [(parse_summary_column(c) or (c,))[0] for c in columns]
    count = Counter(feats)
    w = np.array([count[f] ** -0.25 for f in feats], np.float64)
    return w / math.sqrt(np.mean(w ** 2)) if len(w) else w


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
    """A fixed standardisation of summary columns: ``z = clip((x - center) / scale, +-Z_CLIP)``.

    Attributes
    ----------
    columns : tuple of str
    center, scale : ndarray (n_columns,)
        Mean and standard deviation of the real rows it was fitted on (a column whose spread is
        negligible against its magnitude gets scale 1: it counts by its absolute difference).
    weight : ndarray (n_columns,)
        :func:`feature_weights` of the columns (mean square 1).
    source : str
        What it was fitted on (a store folder, "reference clips").
    """

    columns: tuple
    center: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    source: str = ""

    @classmethod
    def fit(cls, x: np.ndarray, columns: Sequence[str], *, source: str = "") -> "FeatureSpace":
        """The space of real rows ``x`` (n, n_columns); non-finite values are ignored."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(columns) or len(x) < 2:
            raise QualityError(f"a feature space needs >= 2 rows of {len(columns)} columns, got {x.shape}")
        with np.errstate(invalid="ignore"):
            center = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
            scale = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
        center = np.nan_to_num(center)
        scale = np.where(~np.isfinite(scale) | (scale < 1e-6 * np.maximum(1.0, np.abs(center))), 1.0, scale)
        return cls(tuple(columns), center, scale, feature_weights(columns), source)

    @classmethod
    def from_store(cls, store_dir: str | Path, *, features=None, max_rows: int = 4000,
                   seed: int = 0) -> "FeatureSpace":
        """The space of a features store's summary columns of ``features`` (default
        :func:`judge_features`), from at most ``max_rows`` rows (seeded)."""
        import pyarrow as pa

        from genaudio.store import parse_summary_column, read_segments, segments_schema

        keep = set(features or judge_features())
        names = [n for n in segments_schema(store_dir).names
                 if (parse_summary_column(n) or (n,))[0] in keep or n in keep]
        table = read_segments(store_dir, columns=names)
        numeric = [n for n in names if pa.types.is_floating(table.schema.field(n).type)]
        if not numeric:
            raise QualityError(f"{store_dir}: the store holds no summary columns to standardise with")
        x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in numeric])
        if len(x) > max_rows:
            x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))]
        return cls.fit(x, numeric, source=str(store_dir))

    def transform(self, x: np.ndarray, columns: Sequence[str] | None = None) -> tuple[np.ndarray, int]:
        """Standardised rows and the number of rows that held non-finite values.

        ``columns`` (the order of ``x``'s columns) is aligned to the space by name; every column
        of the space must be present. A non-finite value becomes +``Z_CLIP`` (maximally off):
        a broken clip counts against its set, it is never dropped.
        """
        x = np.asarray(x, np.float64)
        if columns is not None and tuple(columns) != self.columns:
            pos = {c: i for i, c in enumerate(columns)}
            missing = [c for c in self.columns if c not in pos]
            if missing:
                raise QualityError(f"features lack {len(missing)} column(s) of the judge's space, e.g. {missing[0]}")
            x = x[:, [pos[c] for c in self.columns]]
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise QualityError(f"features have shape {x.shape}, the space has {len(self.columns)} columns")
        bad = ~np.isfinite(x)
        with np.errstate(invalid="ignore", over="ignore"):
            z = np.clip((x - self.center) / self.scale, -Z_CLIP, Z_CLIP)
        z[bad] = Z_CLIP
        return z * self.weight, int(bad.any(axis=1).sum())





# ---------------------------------------------------------------------------------------------
# The estimator


def kid(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Unbiased squared MMD with the cubic polynomial kernel, and its jackknife standard error.

    Parameters
    ----------
    x : ndarray (m, d)
    y : ndarray (n, d)
        Standardised features of the two sets; ``m, n >= 3``.

    Returns
    -------
    value : float
        ``mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)`` with
        ``k(a, b) = (a.b / d + 1)^3``. Near 0 for sets from one distribution (may be < 0).
    se : float
        Delete-one jackknife standard error over both sets.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise QualityError(f"kid needs (m, d) and (n, d) arrays, got {x.shape} and {y.shape}")
    m, n, d = len(x), len(y), x.shape[1]
    if min(m, n) < 3:
        raise QualityError(f"kid needs at least 3 clips on each side for a standard error, got {m} and {n}")
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    rx = kxx.sum(1) - np.diag(kxx)  # row sums without the diagonal
    ry = kyy.sum(1) - np.diag(kyy)
    sxx, syy, sxy = rx.sum(), ry.sum(), kxy.sum()
    value = sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)
    # leave x_i out: its row and column leave the xx sum, its row leaves the xy sum
    loo_x = (sxx - 2 * rx) / ((m - 1) * (m - 2)) + syy / (n * (n - 1)) - 2 * (sxy - kxy.sum(1)) / ((m - 1) * n)
    loo_y = sxx / (m * (m - 1)) + (syy - 2 * ry) / ((n - 1) * (n - 2)) - 2 * (sxy - kxy.sum(0)) / (m * (n - 1))
    var = (m - 1) / m * ((loo_x - loo_x.mean()) ** 2).sum() + (n - 1) / n * ((loo_y - loo_y.mean()) ** 2).sum()
    return float(value), float(math.sqrt(max(var, 0.0)))


@dataclasses.dataclass(frozen=True)
class Judgement:
    """One set of clips scored against a reference (lower is better).

    Attributes
    ----------
    score : float
        KID against the reference's anchor half.
    score_se : float
        Its jackknife standard error.
    n : int
        Clips scored.
    n_nonfinite : int
        Clips whose features held non-finite values (scored as maximally off, not dropped).
    """

    score: float
    score_se: float
    n: int
    n_nonfinite: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def differs_from(self, other: "Judgement", *, sigmas: float = 2.0) -> bool:
        """Whether the two scores differ by more than ``sigmas`` combined standard errors."""
        return abs(self.score - other.score) > sigmas * math.hypot(self.score_se, other.score_se)


# ---------------------------------------------------------------------------------------------
# The real reference


@dataclasses.dataclass(frozen=True)
class Window:
    """A stretch of one real recording: ``seconds`` of ``path`` from ``offset_s``."""

    file_id: str
    path: str
    offset_s: float


@dataclasses.dataclass
class Reference:
    """Two disjoint halves of real clips (split by file) in a fixed space; scores candidates.

    Attributes
    ----------
    space : FeatureSpace
    anchor : ndarray (n, n_columns)
        Standardised features of the half every candidate is compared with.
    other : ndarray (n, n_columns)
        Standardised features of the other half (its files never in the anchor).
    other_audio : list of ndarray (samples,)
        The other half's clips (decoders' ceilings reconstruct them), at ``sample_rate``.
    real_vs_real : Judgement
        ``other`` scored against ``anchor``: the score of real music itself.
    seconds : float
        Clip length (s).
    sample_rate : int
        Rate (Hz) clips are judged at; candidates at other rates are resampled.
    feature_config : FeatureConfig or None
        Configuration of :func:`clip_features`.
    files : dict
        ``{"anchor": [...], "other": [...]}`` file ids of each half.
    """

    space: FeatureSpace
    anchor: np.ndarray
    other: np.ndarray
    other_audio: list
    real_vs_real: Judgement
    seconds: float
    sample_rate: int
    feature_config: Any = None
    files: dict = dataclasses.field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.anchor)

    def score(self, clips: Sequence[np.ndarray], sr: int) -> Judgement:
        """Judge audio clips (each at least ``seconds`` long; the first ``seconds`` are used)."""
        clips = prepare_clips(clips, sr, seconds=self.seconds, sample_rate=self.sample_rate)
        x, columns = clip_features(clips, self.sample_rate, config=self.feature_config)
        return self.score_features(x, columns)

    def score_features(self, x: np.ndarray, columns: Sequence[str]) -> Judgement:
        """Judge precomputed :func:`clip_features` rows."""
        if len(x) < MIN_CLIPS:
            raise QualityError(f"{len(x)} clip(s) to judge; at least {MIN_CLIPS} are needed for a standard error")
        z, bad = self.space.transform(x, columns)
        value, se = kid(self.anchor, z)
        return Judgement(value, se, len(z), bad)

    def summary(self) -> dict:
        """What a report says about the reference (JSON-ready)."""
        return {"score": self.real_vs_real.score, "score_se": self.real_vs_real.score_se, "n": self.n,
                "seconds": self.seconds, "sample_rate": self.sample_rate, "n_columns": len(self.space.columns),
                "space": self.space.source, "files": {k: len(v) for k, v in self.files.items()}}


def prepare_clips(clips: Sequence[np.ndarray], sr: int, *, seconds: float, sample_rate: int) -> list[np.ndarray]:
    """Clips resampled to ``sample_rate`` and cut to their first ``seconds``.

    Raises :class:`QualityError` naming the first clip shorter than ``seconds``.
    """
    import librosa

    need = int(round(seconds * sample_rate))
    out = []
    for i, y in enumerate(clips):
        y = np.asarray(y, np.float32)
        if int(sr) != int(sample_rate):
            y = librosa.resample(y, orig_sr=int(sr), target_sr=int(sample_rate), res_type="soxr_hq")
        if len(y) < need - 1:  # resampling may lose one sample
            raise QualityError(f"clip {i} lasts {len(y) / sample_rate:.2f} s, shorter than the judged "
                               f"{seconds:g} s (lower --seconds)")
        out.append(np.pad(y[:need], (0, max(0, need - len(y)))))
    return out


def split_halves(windows: Sequence[Window], *, n: int, seed: int) -> tuple[list[Window], list[Window]]:
    """Two disjoint sets of at most ``n`` windows each, no file in both, spread over files.

    Files are shuffled (seeded) and dealt to the half that has fewer windows so far; within a half,
    windows are taken round-robin over its files so that every file contributes.
    """
    by_file: dict[str, list[Window]] = {}
    for w in windows:
        by_file.setdefault(w.file_id, []).append(w)
    if len(by_file) < 2:
        raise QualityError(f"the real reference needs at least 2 files (split by file), got {len(by_file)}")
    rng = np.random.default_rng(seed)
    files = sorted(by_file)
    halves: tuple[list[str], list[str]] = ([], [])
    counts = [0, 0]
    for i in rng.permutation(len(files)):
        h = int(counts[1] < counts[0])
        halves[h].append(files[i])
        counts[h] += len(by_file[files[i]])
    return tuple(_round_robin([list(rng.permutation(by_file[f])) for f in fs], n) for fs in halves)


def _round_robin(queues: list[list[Window]], n: int) -> list[Window]:
    out: list[Window] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop())
    return out


def build_reference(windows: Sequence[Window], *, n: int, seconds: float, sample_rate: int, seed: int = 0,
                    space: FeatureSpace | None = None, feature_config=None, progress=None) -> Reference:
    """Load two halves of real clips, compute their features, and score real against real.

    Parameters
    ----------
    windows : sequence of Window
        Candidate stretches of real recordings (each at least ``seconds`` long).
    n : int
        Clips per half (fewer when the windows run out; at least ``MIN_CLIPS``).
    seconds : float
        Clip length (s).
    sample_rate : int
        Rate (Hz) the clips are read and judged at.
    space : FeatureSpace, optional
        Fixed space (e.g. :meth:`FeatureSpace.from_store`); default: fitted on both halves.
    progress : callable, optional
        ``progress(message)`` for long steps.
    """
    say = progress or (lambda _m: None)
    anchor_w, other_w = split_halves(windows, n=n, seed=seed)
    k = min(len(anchor_w), len(other_w))
    if k < MIN_CLIPS:
        raise QualityError(f"the real reference has {k} clip(s) of {seconds:g} s per half; at least "
                           f"{MIN_CLIPS} are needed (more or longer files, or a lower --seconds)")
    anchor_w, other_w = anchor_w[:k], other_w[:k]
    say(f"reading {2 * k} real clips of {seconds:g} s ...")
    anchor_audio = [read_window(w, seconds=seconds, sample_rate=sample_rate) for w in anchor_w]
    other_audio = [read_window(w, seconds=seconds, sample_rate=sample_rate) for w in other_w]
    say("features of the real clips ...")
    xa, cols = clip_features(anchor_audio, sample_rate, config=feature_config)
    xo, _ = clip_features(other_audio, sample_rate, config=feature_config)
    space = space or FeatureSpace.fit(np.vstack([xa, xo]), cols, source="reference clips")
    za, _ = space.transform(xa, cols)
    zo, bad = space.transform(xo, cols)
    rvr = Judgement(*kid(za, zo), len(zo), bad)
    return Reference(space, za, zo, other_audio, rvr, float(seconds), int(sample_rate), feature_config,
                     {"anchor": sorted({w.file_id for w in anchor_w}), "other": sorted({w.file_id for w in other_w})})


def read_window(w: Window, *, seconds: float, sample_rate: int) -> np.ndarray:
    """``seconds`` of audio from a window, mono at ``sample_rate`` (zero-padded at a file's end)."""
    from genaudio.audio import load
    from genaudio.config import AudioConfig

    y, _ = load(w.path, config=AudioConfig(sample_rate=int(sample_rate)), offset=float(w.offset_s),
                duration=float(seconds))
    need = int(round(seconds * sample_rate))
    return np.pad(np.asarray(y, np.float32)[:need], (0, max(0, need - len(y))))


def file_windows(paths: Sequence[str | Path], *, seconds: float, progress=None) -> tuple[list[Window], list[str]]:
    """Non-overlapping ``seconds``-long windows of each readable file, and the files skipped (why)."""
    from genaudio.audio import probe
    from genaudio.errors import GenaudioError

    windows, skipped = [], []
    for p in paths:
        try:
            info = probe(p)
        except GenaudioError as e:
            skipped.append(f"{p}: {e}")
            continue
        count = int(info.duration_s // seconds)
        if count < 1:
            skipped.append(f"{p}: lasts {info.duration_s:.2f} s, shorter than {seconds:g} s")
        windows += [Window(str(p), str(p), i * seconds) for i in range(count)]
    return windows, skipped


def save_reference_summary(path: str | Path, ref: Reference, **extra) -> None:
    """``reference.json``: what the review shows about the reference (atomic)."""
    from genaudio.store import atomic_write_json

    atomic_write_json(path, {**ref.summary(), **extra})


def read_reference_summary(path: str | Path) -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else None


__all__ = ["Z_CLIP", "MIN_CLIPS", "EXCLUDED_FEATURES", "FeatureSpace", "judge_features", "feature_weights", "Judgement", "Reference", "Window", "build_reference",
           "clip_features", "file_windows", "kid", "prepare_clips", "read_window", "split_halves"]
