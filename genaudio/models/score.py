"""Scoring trained models with the judge (:mod:`genaudio.quality`), and code-space diagnostics.

- :func:`score_model`: the comparable quality of a trained model: ``n`` generated clips, decoded by
  the encoder, judged (KID in genaudio's feature space, with its standard error) against a real
  reference (by default two halves of the run's held-out files), beside the real-vs-real score
  and the decoder's ceiling (the encoder's own reconstructions of real clips, judged the same way).
- :func:`judge_generated` / :func:`decoder_ceiling`: the two judgements, for callers (the search)
  that hold a reference already.
- :func:`frechet_distance` and :func:`code_stats`: a per-epoch learning signal in code space
  (training diagnostics only: not comparable across encoders or model families).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from genaudio.errors import ModelError


def frechet_distance(x: np.ndarray, y: np.ndarray, *, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two samples.

    Parameters
    ----------
    x : ndarray (n, d)
    y : ndarray (m, d)
        Samples (rows) of the same ``d`` features; ``n, m >= 2``.
    eps : float
        Added to the covariance diagonals in the ``d <= min(n, m)`` path (numerical safety);
        with fewer samples than dimensions an exact low-rank formula is used instead.

    Returns
    -------
    float
        ``|mu_x - mu_y|^2 + Tr(C_x + C_y - 2 (C_x C_y)^{1/2})`` (>= 0; 0 for identical samples).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ModelError(f"frechet_distance needs (n, d) and (m, d) arrays, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ModelError("frechet_distance needs at least 2 samples on each side")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("inf")
    mu_x, mu_y = x.mean(0), y.mean(0)
    n, m, d = len(x), len(y), x.shape[1]
    if d > min(n, m):
        # Few samples in many dimensions (the usual case: 32 clips x thousands of summary
        # columns): with C_x = A^T A and C_y = B^T B, the non-zero eigenvalues of C_x C_y are the
        # squared singular values of A B^T, so Tr((C_x C_y)^1/2) is its nuclear norm. Exact, and
        # O(n m d) instead of O(d^3).
        a = (x - mu_x) / math.sqrt(n - 1)
        b = (y - mu_y) / math.sqrt(m - 1)
        tr_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
        fd = float(((mu_x - mu_y) ** 2).sum() + (a ** 2).sum() + (b ** 2).sum() - 2 * tr_sqrt)
        return max(fd, 0.0)
    cx = np.atleast_2d(np.cov(x, rowvar=False)) + eps * np.eye(d)
    cy = np.atleast_2d(np.cov(y, rowvar=False)) + eps * np.eye(d)
    # Tr((Cx Cy)^1/2) = sum sqrt(eig(Cx^1/2 Cy Cx^1/2)): a symmetric PSD problem, so eigh is exact
    # and stable where scipy.linalg.sqrtm of the non-symmetric product returns complex noise.
    w, v = np.linalg.eigh(cx)
    sx = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(sx @ cy @ sx), 0, None)).sum()
    fd = float(((mu_x - mu_y) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * tr_sqrt)
    return max(fd, 0.0)


def code_stats(codes: np.ndarray) -> np.ndarray:
    """Per-clip summary of code sequences, the code-space analogue of the summary features.

    Parameters
    ----------
    codes : ndarray (n, time, dim)

    Returns
    -------
    ndarray (n, 3 * dim)
        Per dimension: mean and std over time, and mean absolute frame-to-frame difference.
    """
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 3 or codes.shape[1] < 2:
        raise ModelError(f"code_stats needs (n, time >= 2, dim) codes, got {codes.shape}")
    d = np.abs(np.diff(codes, axis=1)).mean(1)
    return np.concatenate([codes.mean(1), codes.std(1), d], axis=1)



# ---------------------------------------------------------------------------------------------
# The judge applied to models


#: Default length (s) of judged clips, capped by the store's segment length.
DEFAULT_SECONDS = 5.0


def store_windows(ids, *, seconds: float, files=None) -> list:
    """:class:`~genaudio.quality.Window` of each segment row (``path``, ``start_s``, ``duration_s``)
    at least ``seconds`` long, optionally only of ``files`` (file ids)."""
    from genaudio.quality import Window

    need = {"file_id", "path", "start_s", "duration_s"}
    if ids is None or not need <= set(ids.columns):
        raise ModelError(f"the store's segment table lacks {', '.join(sorted(need))}: cannot read real clips")
    rows = ids[ids["duration_s"] >= seconds - 1e-6]
    if files is not None:
        rows = rows[rows["file_id"].isin(list(files))]
    return [Window(str(r.file_id), str(r.path), float(r.start_s)) for r in rows.itertuples()]


def reference_seconds(ids, seconds: float | None = None) -> float:
    """``seconds``, or :data:`DEFAULT_SECONDS` capped by the median segment length."""
    if seconds is not None:
        return float(seconds)
    med = float(np.median(ids["duration_s"])) if ids is not None and len(ids) else DEFAULT_SECONDS
    return min(DEFAULT_SECONDS, med)


def held_out_reference(ids, val_files, *, n: int, seconds: float, sample_rate: int, seed: int = 0,
                       space=None, progress=None):
    """The judge's reference from held-out files of an encoded or features store.

    Two halves of ``val_files`` (split by file); when fewer than 2 files are held out (a tiny
    corpus), every file of the store is used instead, which the reference's ``files`` shows.
    """
    from genaudio.quality import build_reference

    windows = store_windows(ids, seconds=seconds, files=val_files)
    if len({w.file_id for w in windows}) < 2:
        windows = store_windows(ids, seconds=seconds)
    return build_reference(windows, n=n, seconds=seconds, sample_rate=sample_rate, seed=seed, space=space,
                           progress=progress)


def judge_generated(model, enc, reference, *, n: int, seed: int = 0):
    """Judge ``n`` clips generated by ``model`` and decoded by ``enc`` (a :class:`Judgement`)."""
    from genaudio.models.generate import generate_clips

    clips, sr, _ = generate_clips(model, n=n, seconds=reference.seconds, seed=seed, encoder=enc)
    return reference.score(clips, sr)


def decoder_ceiling(enc, reference):
    """Judge the encoder's reconstructions of the reference's ``other`` half: the best any model
    decoded by ``enc`` can expect (what the decoder alone loses)."""
    clips = [enc.reconstruct(y) for y in reference.other_audio]
    return reference.score(clips, reference.sample_rate)


def score_model(run: Any, *, encoder: Any = None, reference=None, n_clips: int = 32, seconds: float | None = None,
                seed: int = 0, progress=None) -> dict:
    """The comparable quality of a trained model, with its reference and its decoder's ceiling.

    Parameters
    ----------
    run : path or TrainedModel
        A run folder, a checkpoint, or a model from :func:`genaudio.models.load_run`.
    encoder : Encoder or path, optional
        Decodes generated codes; default: the encoder of the run's encoded store.
    reference : Reference, optional
        Default: :func:`held_out_reference` on the run's held-out files (``n_clips`` per half).
    n_clips : int
        Clips generated (and real clips per reference half).
    seconds : float, optional
        Clip length; default :func:`reference_seconds` of the encoded store.
    seed : int
        Seeds generation and the choice of real clips.

    Returns
    -------
    dict
        ``quality``, ``quality_se`` (KID of generated clips and its standard error), ``n_generated``,
        ``n_nonfinite``, ``reference_quality``/``reference_quality_se`` (real vs real),
        ``decoder_quality``/``decoder_quality_se`` (reconstructions; absent when the encoder
        cannot reconstruct audio), ``n_real``, ``seconds``, ``score_seconds`` (time taken), and
        ``val_loss``/``val_mse`` (LSTM, last epoch) when the run has them.
    """
    from genaudio.encoders.store import read_codes
    from genaudio.models.generate import load_run, load_run_encoder

    t0 = time.perf_counter()
    model = load_run(run)
    enc = load_run_encoder(model, encoder)
    if not enc.has_audio_decoder:
        raise ModelError("this encoder has no audio decoder (feature-subset codes): its models cannot be judged as audio")
    out: dict[str, Any] = {}
    last = model.history[-1] if model.history else {}
    for key in ("val_loss", "val_mse"):
        if model.config.model == "lstm" and key in last:
            out[key] = float(last[key])
    if reference is None:
        if not model.enc_dir:
            raise ModelError(f"{model.path}: the run does not name its encoded store; pass a reference")
        ids = read_codes(model.enc_dir).ids
        reference = held_out_reference(ids, model.val_files, n=n_clips, sample_rate=int(enc.sample_rate), seed=seed,
                                       seconds=reference_seconds(ids, seconds), progress=progress)
    gen = judge_generated(model, enc, reference, n=n_clips, seed=seed)
    out.update(quality=gen.score, quality_se=gen.score_se, n_generated=gen.n, n_nonfinite=gen.n_nonfinite,
               reference_quality=reference.real_vs_real.score, reference_quality_se=reference.real_vs_real.score_se,
               n_real=reference.n, seconds=reference.seconds)
    try:
        ceil = decoder_ceiling(enc, reference)
        out.update(decoder_quality=ceil.score, decoder_quality_se=ceil.score_se)
    except Exception as e:  # e.g. an encoder of frame groups that audio alone cannot feed
        out["decoder_error"] = f"{type(e).__name__}: {e}"[:300]
    out["score_seconds"] = time.perf_counter() - t0
    return out


def describe(scored: dict) -> str:
    """One line for a terminal: the model's quality beside the real-vs-real reference and the
    decoder's ceiling, each with its standard error."""
    def pm(key: str) -> str:
        return f"{scored[key]:.3g} +- {scored.get(key + '_se', float('nan')):.2g}"

    parts = [f"quality (KID, lower is better) {pm('quality')}", f"real vs real {pm('reference_quality')}"]
    if "decoder_quality" in scored:
        parts.append(f"decoder alone {pm('decoder_quality')}")
    if scored.get("n_nonfinite"):
        parts.append(f"{scored['n_nonfinite']} clip(s) with non-finite features")
    return "; ".join(parts) + f" ({scored['n_generated']} clips of {scored['seconds']:g} s)"


# ---------------------------------------------------------------------------------------------
# Candidates of `genaudio score`: folders of clips or trained model runs


def is_model_run(path: str | Path) -> bool:
    """Whether ``path`` is a trained model (a run folder with checkpoints, or a ``.pt`` file)."""
    p = Path(path)
    return (p.is_dir() and (p / "checkpoints" / "last.pt").is_file()) or (p.is_file() and p.suffix == ".pt")


def candidate_clips(path: str | Path, *, n: int, seconds: float, sample_rate: int, seed: int = 0) -> tuple[list, int]:
    """Up to ``n`` clips of a candidate: generated by a model run, or read from a folder of audio.

    Raises :class:`~genaudio.errors.QualityError` (one line) for an empty folder, an unreadable or
    too short clip, or a model whose encoder cannot render audio.
    """
    from genaudio.errors import GenaudioError, QualityError

    if is_model_run(path):
        from genaudio.models.generate import generate_clips

        try:
            clips, sr, _ = generate_clips(path, n=n, seconds=seconds, seed=seed)
        except GenaudioError as e:
            raise QualityError(f"{path}: cannot generate clips to judge: {e}") from None
        return clips, sr
    from genaudio.audio import load, probe
    from genaudio.config import AudioConfig

    files = candidate_files(path)
    if len(files) > n:
        files = sorted(np.random.default_rng(seed).choice(files, n, replace=False))
    clips = []
    for f in files:
        try:
            if probe(f).duration_s < seconds - 1e-3:
                raise QualityError(f"{path}: {Path(f).name} lasts {probe(f).duration_s:.2f} s, shorter than "
                                   f"the judged {seconds:g} s (lower --seconds)")
            y, _ = load(f, config=AudioConfig(sample_rate=int(sample_rate)), duration=seconds)
        except QualityError:
            raise
        except GenaudioError as e:
            raise QualityError(f"{path}: {Path(f).name} is unreadable: {e}") from None
        clips.append(y)
    return clips, int(sample_rate)


def candidate_files(path: str | Path) -> list[str]:
    """The audio files of a candidate folder; :class:`~genaudio.errors.QualityError` when none."""
    from genaudio.errors import GenaudioError, QualityError
    from genaudio.extract import discover

    try:
        files = [f.path for f in discover([str(path)])]
    except GenaudioError:
        files = []
    if not files:
        raise QualityError(f"{path}: no audio clips in it")
    return files


def score_paths(real: list, candidates: list, *, n: int = 32, seconds: float = DEFAULT_SECONDS,
                sample_rate: int = 22050, seed: int = 0, progress=None) -> dict:
    """``genaudio score``: judge each candidate against a reference built from ``real`` audio.

    Returns
    -------
    dict
        ``{"reference": {score, score_se, n, seconds, sample_rate, files, skipped}, "candidates":
        [{path, kind, score, score_se, n, n_nonfinite, seconds_taken}, ...]}``; lower is better.
    """
    from genaudio.errors import GenaudioError, QualityError
    from genaudio.extract import discover
    from genaudio.quality import build_reference, file_windows

    say = progress or (lambda _m: None)
    for path in candidates:  # fail before the reference's minutes of work
        if not is_model_run(path):
            candidate_files(path)
    try:
        files = [f.path for f in discover([str(r) for r in real])]
    except GenaudioError as e:
        raise QualityError(f"reference: {e}") from None
    windows, skipped = file_windows(files, seconds=seconds)
    ref = build_reference(windows, n=n, seconds=seconds, sample_rate=sample_rate, seed=seed, progress=say)
    out = {"reference": {**ref.summary(), "skipped": skipped}, "candidates": []}
    for path in candidates:
        t0 = time.perf_counter()
        say(f"judging {path} ...")
        clips, sr = candidate_clips(path, n=n, seconds=seconds, sample_rate=sample_rate, seed=seed)
        j = ref.score(clips, sr)
        out["candidates"].append({"path": str(path), "kind": "model" if is_model_run(path) else "clips", **j.to_dict(),
                                  "seconds_taken": time.perf_counter() - t0})
    return out
