"""Encoder input frames: a spectral core plus optional frame-level feature groups, standardised.

An encoder's input frame at time ``t`` is the concatenation of

* the **spectral core**, the part that leads back to sound: ``"log_mel"`` (mel power in dB,
  ``n_mels`` bands) or ``"log_stft"`` (STFT magnitude in dB, ``1 + n_fft // 2`` bins), or
  ``"none"`` (then the encoder has no audio decoder);
* any **extra frame-level features** (``mfcc``, ``chroma_stft``, ``spectral_contrast``, ...), as the
  feature catalog (:mod:`genaudio.features`) or a features store gives them.

Matrices follow the feature convention ``(dims, time)``. Each block is standardised with
statistics fitted on the training data (:class:`Standardizer`): extra features per dimension
(z-scores), the spectral core with a per-bin mean but **one** scale for the whole block, so that
squared error on standardised core frames stays proportional to squared error in dB (what the
log-spectral distance measures) instead of over-weighting near-silent bins.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Sequence

import librosa
import numpy as np
from threadpoolctl import threadpool_limits

from genaudio.config import FeatureConfig, from_dict
from genaudio.errors import EncoderError

CORES = ("log_mel", "log_stft", "none")
#: Power floor of the dB conversion (-100 dB re full scale): below it, a bin counts as silence.
AMIN = 1e-10


@dataclasses.dataclass(frozen=True)
class Block:
    """One named block of rows in an input frame matrix."""

    name: str
    dims: int
    core: bool = False


def core_dims(core: str, *, n_fft: int, n_mels: int) -> int:
    """Number of rows of the spectral core ``core``."""
    if core == "log_mel":
        return n_mels
    if core == "log_stft":
        return 1 + n_fft // 2
    return 0


#: catalog feature holding each spectral core (both in dB re 1.0, floored 80 dB below the clip's peak)
CORE_FEATURES = {"log_mel": "log_mel", "log_stft": "stft_db"}


def core_feature(core: str) -> str | None:
    """Catalog name of a core's frames (``log_stft`` is the catalog's ``stft_db``); None for ``none``."""
    return CORE_FEATURES.get(core)


def stft_magnitude(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """``|STFT(y)|`` with a Hann window and centred frames, shape ``(1 + n_fft // 2, time)``."""
    return np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=n_fft, hop_length=hop_length,
                               center=True))


#: ``FeatureConfig`` fields an encoder's ``feature_options`` may set: the analysis options besides
#: the core's (``n_fft``, ``hop_length``, ``n_mels``) and the lists of features to compute
FEATURE_OPTIONS = tuple(f.name for f in dataclasses.fields(FeatureConfig)
                        if f.name not in ("n_fft", "hop_length", "n_mels", "features", "frame_features", "stats"))


def compute_parts(y: np.ndarray, *, sr: int, core: str, groups: Sequence[str], n_fft: int,
                  hop_length: int, n_mels: int, options: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The spectral core and extra features of waveform ``y`` from one shared analysis.

    Calls :func:`genaudio.features.compute` (the feature catalog), so the frames are exactly what
    ``genaudio extract`` stores: ``log_mel`` is ``power_to_db(melspectrogram)``, ``log_stft`` the
    catalog's ``stft_db`` (``amplitude_to_db(|STFT|)``), both dB re 1.0 with ``top_db=80``.
    ``options`` are the other analysis options (:data:`FEATURE_OPTIONS`), the defaults where absent.

    Returns
    -------
    dict of str -> np.ndarray, each shape (dims, time), float32
    """
    from genaudio.errors import GenaudioError
    from genaudio.features import compute

    names = tuple(n for n in ((core_feature(core),) if core_feature(core) else ()) + tuple(groups))
    fc = from_dict(FeatureConfig, {**(options or {}), "n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels,
                                   "features": names, "frame_features": names})
    try:
        out = compute(np.asarray(y, dtype=np.float32), sr, config=fc, features=names)
    except GenaudioError as e:
        raise EncoderError(f"computing encoder input features failed: {e}") from None
    parts = {}
    for n in names:
        m = np.asarray(out[n], dtype=np.float32)
        if m.ndim == 1:
            m = m[None, :]
        parts[n] = m
    return parts


def core_to_audio(frames: np.ndarray, *, sr: int, core: str, n_fft: int, hop_length: int,
                  n_iter: int = 64, length: int | None = None, seed: int = 0) -> np.ndarray:
    """Render a spectral core (dB) to a waveform with Griffin-Lim (:func:`griffin_lim`).

    ``log_mel`` is first mapped to a linear-frequency magnitude by non-negative least squares
    (:func:`librosa.feature.inverse.mel_to_stft`). The phase search starts from a seeded random
    phase, so the output is reproducible.

    Returns
    -------
    np.ndarray, shape (samples,), float32
    """
    if core not in CORE_FEATURES:
        raise EncoderError("this encoder has no spectral core, so it cannot render audio")
    frames = np.asarray(frames, dtype=np.float64)
    # Clip decoded dB values to a sane range: a model may generate anything, and 10**(x/10)
    # of a large x overflows.
    frames = np.clip(frames, 10 * np.log10(AMIN), 60.0)
    power = librosa.db_to_power(frames)
    if core == "log_mel":
        if frames.shape[0] < 2:
            raise EncoderError(f"log_mel frames have {frames.shape[0]} bands; need at least 2")
        mag = np.sqrt(mel_to_linear_power(power, sr=sr, n_fft=n_fft))
    else:
        if frames.shape[0] != 1 + n_fft // 2:
            raise EncoderError(f"log_stft frames have {frames.shape[0]} bins, expected {1 + n_fft // 2}")
        mag = np.sqrt(power)
    y = griffin_lim(mag.astype(np.float32), n_fft=n_fft, hop_length=hop_length, n_iter=n_iter, length=length,
                    seed=seed)
    return np.nan_to_num(y)


def griffin_lim(mag: np.ndarray, *, n_fft: int, hop_length: int, n_iter: int = 64, length: int | None = None,
                seed: int = 0, momentum: float = 0.99) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al., 2013) on torch's FFT.

    ``librosa.griffinlim(mag, n_iter=, hop_length=, n_fft=, length=, init="random",
    random_state=seed)``: the same random start (``np.random.RandomState(seed)``), momentum,
    periodic Hann window and zero padding, so the same waveform up to float rounding (relative
    difference at most 5.8e-3 after 64 iterations on real music, the same spectral convergence),
    3.8-4x faster on one thread (``benchmarks/griffin_lim.py``): the iSTFT's overlap-add is a sum of
    ``ceil(n_fft / hop)`` shifted blocks with the window's envelope computed once, and every array
    of the loop is allocated once (at these sizes a fresh tensor costs more than the arithmetic).

    Parameters
    ----------
    mag : np.ndarray, shape (1 + n_fft // 2, frames)
        STFT magnitude (centred frames, ``hop_length`` samples apart).
    length : int, optional
        Output samples, between ``hop_length * (frames - 1)`` (the default) and
        ``hop_length * frames - 1``: the lengths whose centred STFT has ``frames`` frames.

    Returns
    -------
    np.ndarray, shape (samples,), float32
    """
    import torch

    mag = np.ascontiguousarray(mag, dtype=np.float32)
    bins, T = mag.shape
    n = length if length is not None else hop_length * (T - 1)
    if bins != 1 + n_fft // 2:
        raise EncoderError(f"a magnitude of {bins} bins is not an STFT of n_fft {n_fft}")
    if n == 0:
        return np.zeros(0, np.float32)
    if 1 + n // hop_length != T:
        raise EncoderError(f"{T} frames of hop {hop_length} cannot make {n} samples")
    hop, pad = hop_length, n_fft // 2
    blocks = -(-n_fft // hop)          # frame = blocks x hop samples, zero beyond n_fft
    signal = (T + blocks - 1) * hop    # the centred, zero-padded signal the frames cover
    window = torch.hann_window(n_fft)
    synthesis = torch.zeros(blocks * hop)
    synthesis[:n_fft] = window
    # 1 / the overlap-added squared window inside the output, 0 in the padding (the STFT pads zeros)
    envelope = _overlap_add(torch.square(synthesis).expand(T, -1), torch.empty(signal), hop)
    inverse = torch.zeros(signal)
    inside = slice(pad, pad + n)
    inverse[inside] = 1 / torch.clamp(envelope[inside], min=torch.finfo(torch.float32).tiny)

    S = torch.from_numpy(mag.T.copy())                     # (T, bins): frames are rows
    # the iSTFT's frames (zero beyond n_fft, where the synthesis window keeps them zero) and output
    frames, y = torch.zeros(T, blocks * hop), torch.empty(signal)
    # the STFT's frames: in the iSTFT's scratch (no longer needed then) when it has their size
    analysis = frames if blocks * hop == n_fft else torch.empty(T, n_fft)
    # the start: the magnitude with a random phase, S * (cos, sin) (torch.polar is 4x slower)
    phase = torch.from_numpy(np.ascontiguousarray(np.random.RandomState(seed).random_sample(mag.shape).T,
                                                  dtype=np.float32)).mul_(2 * np.pi)
    spec = torch.empty(T, bins, dtype=torch.complex64)
    parts = torch.view_as_real(spec)
    torch.cos(phase, out=parts[..., 0]).mul_(S)
    torch.sin(phase, out=parts[..., 1]).mul_(S)
    power = phase                      # |a|^2 of the loop, in the start's buffer
    # the last two STFTs (the momentum's); the first step's "previous" is zero
    rebuilt, previous = torch.zeros_like(spec), torch.empty_like(spec)
    threads = torch.get_num_threads()
    # one thread: these FFTs are small, and two threads on a loaded 2-core machine took 2x as long
    torch.set_num_threads(1)
    try:
        for _ in range(n_iter):
            _istft(spec, frames, synthesis, inverse, y, n_fft=n_fft, hop=hop)
            torch.mul(y.unfold(0, n_fft, hop), window, out=analysis)
            previous, rebuilt = rebuilt, previous
            torch.fft.rfft(analysis, out=rebuilt)
            # momentum, then the target magnitude with the rebuilt phase: S * a / |a|
            torch.sub(rebuilt, previous, alpha=momentum / (1 + momentum), out=spec)
            torch.mul(parts[..., 0], parts[..., 0], out=power).addcmul_(parts[..., 1], parts[..., 1])
            spec.mul_(power.add_(torch.finfo(torch.float32).tiny).rsqrt_().mul_(S))
        _istft(spec, frames, synthesis, inverse, y, n_fft=n_fft, hop=hop)
        return y[inside].numpy().copy()
    finally:
        torch.set_num_threads(threads)


def _overlap_add(frames, out, hop: int):
    """``out[:] =`` the sum of frames ``(T, blocks * hop)`` placed ``hop`` apart, shape
    ``((T + blocks - 1) * hop,)``; returns ``out``."""
    T, blocks = frames.shape[0], frames.shape[1] // hop
    parts, rows = frames.reshape(T, blocks, hop), out.view(T + blocks - 1, hop)
    rows.zero_()
    for b in range(blocks):
        rows[b:b + T] += parts[:, b]
    return out


def _istft(spec, frames, synthesis, inverse, y, *, n_fft: int, hop: int) -> None:
    """``y[:] =`` the iSTFT of ``spec`` (T, bins) inside the output, zero in the padding
    (``frames``: scratch ``(T, blocks * hop)``, zero beyond ``n_fft``)."""
    import torch

    if frames.shape[1] == n_fft:
        torch.fft.irfft(spec, n=n_fft, out=frames)
    else:
        frames[:, :n_fft] = torch.fft.irfft(spec, n=n_fft)
    _overlap_add(frames.mul_(synthesis), y, hop).mul_(inverse)


@dataclasses.dataclass(frozen=True)
class GriffinLimDecoder:
    """The fixed decoder of a spectral core: :func:`core_to_audio` with the encoder's analysis.

    Same interface as the learned decoder (:class:`genaudio.encoders.vocoder.LearnedDecoder`):
    ``name`` and ``render(frames, length=)``; an encoder without a trained vocoder uses this one.
    """

    core: str
    sample_rate: int
    n_fft: int
    hop_length: int
    n_iter: int = 64
    seed: int = 0

    name = "griffinlim"

    def render(self, frames: np.ndarray, *, length: int | None = None) -> np.ndarray:
        """Waveform ``(samples,)`` float32 of core frames ``(core dims, time)`` in dB."""
        return core_to_audio(frames, sr=self.sample_rate, core=self.core, n_fft=self.n_fft,
                             hop_length=self.hop_length, n_iter=self.n_iter, length=length, seed=self.seed)


def mel_to_linear_power(mel_power: np.ndarray, *, sr: int, n_fft: int, n_iter: int = 50) -> np.ndarray:
    """Non-negative least-squares linear-frequency power of a mel power spectrogram.

    Solves ``min ||M S - X||^2, S >= 0`` (``M`` the librosa mel filterbank) like
    :func:`librosa.feature.inverse.mel_to_stft`, but with Lee-Seung multiplicative updates from
    the clipped pseudo-inverse: 50 iterations of products with the (n_mels, bins) filterbank instead of a per-block
    L-BFGS: faster, and a lower residual than librosa's default stopping point. The filterbank is
    sparse (each band covers a few bins) and kept as such, with its pseudo-inverse, per analysis:
    9x faster than dense products (the same result).

    Returns
    -------
    np.ndarray, shape (1 + n_fft // 2, time)
    """
    M, M_T, pseudo_inverse = _mel_filterbank(sr, n_fft, mel_power.shape[0])
    X = np.asarray(mel_power, dtype=np.float64)
    eps = 1e-12 * max(float(X.max()), 1e-30)
    S = np.maximum(pseudo_inverse @ X, 0.0) + eps
    MtX = M_T @ X
    # small products: one BLAS thread avoids oversubscription on a shared machine
    with threadpool_limits(1):
        for _ in range(n_iter):
            S *= MtX / (M_T @ (M @ S) + eps)
    return S


@functools.lru_cache(maxsize=8)
def _mel_filterbank(sr: int, n_fft: int, n_mels: int):
    """librosa's mel filterbank ``(n_mels, bins)`` and its transpose as sparse float64 matrices,
    and its pseudo-inverse ``(bins, n_mels)``."""
    import scipy.sparse

    M = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64)
    return scipy.sparse.csr_matrix(M), scipy.sparse.csr_matrix(M.T), np.linalg.pinv(M)


def fit_length(m: np.ndarray, t: int) -> np.ndarray:
    """Trim or edge-pad matrix ``m`` (dims, time) to ``t`` frames (features may differ by a frame)."""
    if m.shape[1] == t:
        return m
    if m.shape[1] > t:
        return m[:, :t]
    if m.shape[1] == 0:
        return np.zeros((m.shape[0], t), dtype=m.dtype)
    return np.pad(m, ((0, 0), (0, t - m.shape[1])), mode="edge")


@dataclasses.dataclass
class Standardizer:
    """Per-row affine standardisation of an input frame matrix: ``z = (x - mean) / scale``."""

    mean: np.ndarray  # (dims,)
    scale: np.ndarray  # (dims,)

    @classmethod
    def fit(cls, frames: Sequence[np.ndarray], blocks: Sequence[Block]) -> "Standardizer":
        X = np.concatenate([np.asarray(f, dtype=np.float64) for f in frames], axis=1)
        mean = X.mean(axis=1)
        scale = np.ones_like(mean)
        start = 0
        for b in blocks:
            sl = slice(start, start + b.dims)
            if b.core:
                s = float(np.sqrt(np.mean((X[sl] - mean[sl, None]) ** 2)))
                scale[sl] = s if s > 1e-8 else 1.0
            else:
                s = X[sl].std(axis=1)
                scale[sl] = np.where(s > 1e-8, s, 1.0)
            start += b.dims
        return cls(mean.astype(np.float32), scale.astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean[:, None]) / self.scale[:, None]).astype(np.float32)

    def invert(self, z: np.ndarray) -> np.ndarray:
        return (z * self.scale[:, None] + self.mean[:, None]).astype(np.float32)


def assemble(parts: Mapping[str, np.ndarray], blocks: Sequence[Block]) -> np.ndarray:
    """Stack the named ``(dims, time)`` matrices of ``blocks`` into one input matrix.

    All blocks are cut or edge-padded to the first block's length (the core's, when there is one).
    """
    missing = [b.name for b in blocks if b.name not in parts]
    if missing:
        raise EncoderError(f"input frames lack {', '.join(missing)} (have {', '.join(sorted(parts)) or 'nothing'})")
    mats = []
    t = None
    for b in blocks:
        m = np.asarray(parts[b.name], dtype=np.float32)
        if m.ndim == 1:
            m = m[None, :]
        if m.ndim != 2 or m.shape[0] != b.dims:
            raise EncoderError(f"feature {b.name} has shape {m.shape}, expected ({b.dims}, time)")
        t = m.shape[1] if t is None else t
        mats.append(fit_length(m, t))
    if not t:
        raise EncoderError("input frames are empty (0 frames)")
    out = np.concatenate(mats, axis=0)
    if not np.all(np.isfinite(out)):
        raise EncoderError("input frames contain NaN or infinity")
    return out


def split(frames: np.ndarray, blocks: Sequence[Block]) -> dict[str, np.ndarray]:
    """The inverse of :func:`assemble`: ``{name: (dims, time)}``."""
    out, start = {}, 0
    for b in blocks:
        out[b.name] = frames[start:start + b.dims]
        start += b.dims
    return out


def stack_frames(z: np.ndarray, factor: int) -> np.ndarray:
    """``(dims, time)`` -> ``(time / factor, dims * factor)``: ``factor`` consecutive frames per row.

    The time axis is edge-padded to a multiple of ``factor``.
    """
    d, t = z.shape
    pad = (-t) % factor
    if pad:
        z = np.pad(z, ((0, 0), (0, pad)), mode="edge")
    return z.T.reshape(-1, factor * d)


def unstack_frames(rows: np.ndarray, factor: int, dims: int) -> np.ndarray:
    """Inverse of :func:`stack_frames` (without removing the padding): -> ``(dims, time)``."""
    return rows.reshape(-1, dims).T
