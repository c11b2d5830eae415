"""The frame features of the default set in torch, batched over segments (any device).

:func:`analyses` takes a batch of equal-length mono segments, computes on ``device`` (a GPU when
there is one; the CPU in the tests) one STFT for the whole batch and from it every frame feature
listed in :data:`TORCH_FEATURES`, the onset envelopes, the tempogram and the CQT magnitude (octave
by octave with librosa's filters and soxr's resampling filter, when a feature of
:data:`CQT_FEATURES` is asked for), and returns one :class:`~genaudio.features.analysis.Analysis`
per segment with those results already in place. Everything else (the tuning estimates, what the
CQT's features derive from it, tempo, beat tracking, onset picking, the waveform statistics) is
then computed on the CPU, in the same worker, by the usual analysis from those intermediates:
``analysis.compute(names)`` returns the same dictionary as :func:`genaudio.features.compute`.

Equality: each torch feature equals the numpy/librosa path within :data:`TOLERANCE` (max |a - b|
/ max |b| per feature and segment, float32 on both sides; ``tests/features/test_torch_frames.py``
checks it on CPU torch, ``benchmarks/features_torch.py`` reports it), except that
``spectral_rolloff`` may move by one frequency bin in a few frames (:data:`ROLLOFF_BIN_FRACTION`)
and the CQT's features are held to :data:`CQT_TOLERANCE`.
"""
from __future__ import annotations

import functools
from typing import Sequence

import librosa
import numpy as np
import torch

from genaudio.config import FeatureConfig
from genaudio.features._cqt import estimate_tuning
from genaudio.features.analysis import Analysis

#: Frame features computed in torch (the rest of the catalog runs on the CPU from their inputs).
TORCH_FEATURES = ("rms", "zero_crossing_rate", "log_mel", "melspectrogram", "mfcc", "chroma_stft",
                  "spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness",
                  "spectral_contrast", "onset_strength", "tempogram", "stft_db")

#: Features derived from the CQT: the torch path computes the CQT magnitude (:func:`_cqt`) and
#: the CPU derives these from it, in the same worker.
CQT_FEATURES = frozenset({"cqt", "chroma_cqt", "chroma_cens", "tonnetz"})

#: Documented tolerance of the torch path against the numpy path (max relative error per feature).
TOLERANCE = 1e-4
#: ... of the CQT-derived features: the CQT magnitude itself agrees to ~1e-6 of its peak (the same
#: filters, soxr's own resampling filter: :func:`_downsample`), but ``cqt`` is in dB, where the
#: quietest bins carry the numpy path's float32 rounding (measured: 1.2e-4 of the peak |dB|).
CQT_TOLERANCE = 5e-4
#: A segment with a frame whose CQT peaks below this fraction of the segment's CQT peak (digital
#: silence, a fade) gets the CPU's CQT: chroma_cqt, chroma_cens and tonnetz normalise each frame by
#: its own peak, so in such a frame they are the CQT's rounding (~1e-6 of the segment's peak)
#: magnified, which no two implementations share (measured: 0.68 apart on a drum clip's silent
#: tail). The store then stays equal to the CPU path's.
QUIET_FRAME = 1e-3
#: ... except spectral_rolloff, a bin frequency: where a frame's cumulative energy meets the
#: threshold within float32 rounding it moves by one bin (sr / n_fft Hz); at most this fraction
#: of the frames do.
ROLLOFF_BIN_FRACTION = 0.05

_AMIN = 1e-10
_TOP_DB = 80.0


@functools.lru_cache(maxsize=16)
def _filters(sr: int, config: FeatureConfig) -> dict[str, np.ndarray]:
    """Signal-independent matrices of ``config`` at ``sr`` (numpy, float32/64), built once."""
    n_fft = config.n_fft
    return {
        "window": librosa.filters.get_window("hann", config.win_length or n_fft, fftbins=True),
        "mel": librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=config.n_mels),
        "dct": scipy_dct_matrix(config.n_mels)[: config.n_mfcc],
        "freq": librosa.fft_frequencies(sr=sr, n_fft=n_fft),
        "tempo_window": librosa.filters.get_window("hann", config.tempogram_win_length, fftbins=True),
    }


def scipy_dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II as an ``(n, n)`` matrix (what ``librosa.feature.mfcc`` applies)."""
    import scipy.fft

    return scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)


def _power_to_db(x: torch.Tensor) -> torch.Tensor:
    """``librosa.power_to_db(x, ref=1.0, amin=1e-10, top_db=80)`` per batch item."""
    db = 10.0 * torch.log10(torch.clamp(x, min=_AMIN))
    top = db.amax(dim=tuple(range(1, db.ndim)), keepdim=True)
    return torch.maximum(db, top - _TOP_DB)


def _frames(y: torch.Tensor, frame_length: int, hop_length: int, mode: str) -> torch.Tensor:
    """Centred frames ``(batch, frames, frame_length)`` of ``(batch, n)``, as librosa pads them."""
    half = frame_length // 2
    if mode == "edge":
        padded = torch.cat([y[:, :1].expand(-1, half), y, y[:, -1:].expand(-1, half)], dim=1)
    else:
        padded = torch.nn.functional.pad(y, (half, half))
    return padded.unfold(1, frame_length, hop_length)


def _zcr(y: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    # sign changes counted once, then summed per frame through a cumulative sum (exact integers)
    half = frame_length // 2
    yp = torch.cat([y[:, :1].expand(-1, half), y, y[:, -1:].expand(-1, half)], dim=1)
    sign = torch.signbit(torch.where(yp.abs() <= 1e-10, torch.zeros_like(yp), yp))
    changes = (sign[:, 1:] != sign[:, :-1]).to(torch.int64)
    cum = torch.nn.functional.pad(torch.cumsum(changes, dim=1), (1, 0))
    starts = torch.arange(0, yp.shape[1] - frame_length + 1, hop_length, device=y.device)
    counts = cum[:, starts + frame_length - 1] - cum[:, starts]
    return (counts.to(torch.float64) / frame_length).to(y.dtype)


def _contrast(mag: torch.Tensor, freq: np.ndarray, sr: int, n_bands: int) -> torch.Tensor:
    """``librosa.feature.spectral_contrast(S=mag, sr=sr, n_bands=n_bands)`` (fmin 200, quantile 0.02)."""
    octa = np.zeros(n_bands + 2)
    octa[1:] = 200.0 * (2.0 ** np.arange(0, n_bands + 1))
    peaks, valleys = [], []
    for k, (lo, hi) in enumerate(zip(octa[:-1], octa[1:])):
        band = (freq >= lo) & (freq <= hi)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1:] = True
        rows = np.flatnonzero(band)
        if k < n_bands:
            rows = rows[:-1]
        q = int(max(np.rint(0.02 * np.sum(band)), 1))
        srt = torch.sort(mag[:, rows, :], dim=1).values
        valleys.append(srt[:, :q].mean(dim=1))
        peaks.append(srt[:, -q:].mean(dim=1))
    return _power_to_db(torch.stack(peaks, 1)) - _power_to_db(torch.stack(valleys, 1))


def _onset(log_mel: torch.Tensor, n_fft: int, hop_length: int, median: bool) -> torch.Tensor:
    """``librosa.onset.onset_strength(S=log_mel, ...)`` (lag 1, mean or median over bands)."""
    flux = torch.clamp(log_mel[:, :, 1:] - log_mel[:, :, :-1], min=0.0)
    if median:  # np.median: the mean of the two middle values for an even count (torch.median
        # would take the lower one)
        srt = torch.sort(flux, dim=1).values
        mid = srt.shape[1] // 2
        env = srt[:, mid] if srt.shape[1] % 2 else 0.5 * (srt[:, mid - 1] + srt[:, mid])
    else:
        env = flux.mean(dim=1)
    env = torch.nn.functional.pad(env, (1 + n_fft // (2 * hop_length), 0))
    return env[:, : log_mel.shape[-1]]


def _tempogram(onset: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """``librosa.feature.tempogram(onset_envelope=onset, win_length=len(window))`` per batch item."""
    win = window.shape[0]
    n = onset.shape[1]
    half = win // 2
    # linear_ramp padding to 0 at both ends (numpy's np.pad mode)
    ramp = torch.arange(half, device=onset.device, dtype=onset.dtype) / half
    left = onset[:, :1] * ramp[None, :]
    right = onset[:, -1:] * ramp.flip(0)[None, :]
    padded = torch.cat([left, onset, right], dim=1)
    frames = padded.unfold(1, win, 1)[:, :n] * window
    n_fft = 1 << int(np.ceil(np.log2(2 * win - 1)))
    spec = torch.fft.rfft(frames, n=n_fft, dim=-1)
    ac = torch.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=n_fft, dim=-1)[..., :win]
    peak = ac.abs().amax(dim=-1, keepdim=True)
    peak = torch.where(peak < torch.finfo(ac.dtype).tiny, torch.ones_like(peak), peak)
    return (ac / peak).transpose(1, 2)


def _chroma(tunings: Sequence[float], mag: torch.Tensor, sr: int, config: FeatureConfig) -> torch.Tensor:
    """``librosa.feature.chroma_stft(S=mag**2, tuning=...)`` per segment, max-normalised."""
    fbs = [librosa.filters.chroma(sr=sr, n_fft=config.n_fft, tuning=t, n_chroma=config.n_chroma) for t in tunings]
    chroma = torch.as_tensor(np.stack(fbs), device=mag.device, dtype=mag.dtype) @ (mag ** 2)
    peak = chroma.abs().amax(dim=1, keepdim=True)
    peak = torch.where(peak < torch.finfo(chroma.dtype).tiny, torch.ones_like(peak), peak)
    return chroma / peak


def _spectral(mag: torch.Tensor, freq: torch.Tensor, roll_percent: float) -> dict[str, torch.Tensor]:
    total = mag.sum(dim=1, keepdim=True)
    norm = torch.where(total < torch.finfo(torch.float32).tiny, torch.ones_like(total), total)
    weights = mag / norm
    centroid = (weights * freq[None, :, None]).sum(dim=1, keepdim=True)
    bandwidth = torch.sqrt((weights * (freq[None, :, None] - centroid) ** 2).sum(dim=1, keepdim=True))
    cum = torch.cumsum(mag.double(), dim=1)
    first = torch.argmax((cum >= roll_percent * cum[:, -1:, :]).to(torch.uint8), dim=1, keepdim=True)
    power = torch.clamp(mag.double() ** 2, min=_AMIN)  # float64: a mean of logs over ~1,000 bins
    flatness = (torch.exp(torch.log(power).mean(dim=1, keepdim=True)) / power.mean(dim=1, keepdim=True)).to(mag.dtype)
    return {"spectral_centroid": centroid, "spectral_bandwidth": bandwidth,
            "spectral_rolloff": freq[first], "spectral_flatness": flatness}


@functools.lru_cache(maxsize=4)
def _soxr_kernel(factor: int) -> np.ndarray:
    """The filter of ``librosa.resample(y, orig_sr=factor, target_sr=1, res_type="soxr_hq",
    scale=True)`` before it keeps every ``factor``-th sample: a zero-phase FIR (about 900 taps each
    side at factor 2, flat to 0.91 of the new Nyquist, zero above it), as a circular array centred
    on index 0. Read off soxr itself: soxr resamples by an integer factor with a fixed polyphase
    filter, so an impulse at each of the ``factor`` input phases gives every tap."""
    n = 8192 * factor
    centre = n // 2
    h = np.zeros(n)
    for phase in range(factor):
        x = np.zeros(n)
        x[centre + phase] = 1.0
        y = librosa.resample(x, orig_sr=factor, target_sr=1, res_type="soxr_hq", scale=True)
        h[(factor * np.arange(len(y)) - centre - phase) % n] = y  # y[m] = h[factor * m - impulse]
    return h


@functools.lru_cache(maxsize=32)
def _soxr_response(factor: int, n_fft: int) -> np.ndarray:
    """The frequency response of :func:`_soxr_kernel` on an ``n_fft``-point grid (rfft)."""
    h = _soxr_kernel(factor)
    kernel = np.zeros(n_fft)
    half = len(h) // 2
    kernel[:half], kernel[-half:] = h[:half], h[-half:]
    return np.fft.rfft(kernel)


def _downsample(y: torch.Tensor, factor: int) -> torch.Tensor:
    """``librosa.resample(y, orig_sr=factor, target_sr=1, res_type="soxr_hq", scale=True)`` per
    row: soxr's own filter (:func:`_soxr_kernel`) applied in the frequency domain, zero-padded (the
    signal is zero outside, no circular wrap), then every ``factor``-th sample. Equal to soxr up
    to float rounding, except within a filter length of the ends (:data:`CQT_TOLERANCE`)."""
    n = y.shape[-1]
    n_fft = 1 << int(np.ceil(np.log2(n + len(_soxr_kernel(factor)))))
    spec = torch.fft.rfft(y, n=n_fft, dim=-1)
    response = torch.as_tensor(_soxr_response(factor, n_fft), device=y.device, dtype=spec.dtype)
    low = torch.fft.irfft(spec * response, n=n_fft, dim=-1)[..., :n]
    return low[..., ::factor]


def _cqt(y: torch.Tensor, plan) -> torch.Tensor:
    """``np.abs(librosa.cqt(...))`` of a ``(batch, n)`` float32 tensor following ``plan``
    (:func:`genaudio.features._cqt.cqt_plan`: the same filters, octave by octave); float32
    ``(batch, n_bins, frames)``. float32 and complex64, as the numpy path computes it."""
    if plan.early_count:
        y = _downsample(y, 2 ** plan.early_count)
    parts = []
    for octave in plan.octaves:
        basis = torch.as_tensor(octave.fft_basis.toarray(), device=y.device)
        ones = torch.ones(octave.n_fft, device=y.device, dtype=y.dtype)
        spec = torch.stft(y, n_fft=octave.n_fft, hop_length=octave.hop_length, window=ones, center=True,
                          pad_mode="constant", return_complex=True)
        parts.append(basis @ spec)
        if octave.halve_after:
            y = _downsample(y, 2)
    # librosa's stacking: octaves fill the bins from the top down, trimmed to the shortest
    frames = min(p.shape[-1] for p in parts)
    stacked = torch.cat([p[..., :frames] for p in reversed(parts)], dim=1)[:, -plan.n_bins:]
    scale = torch.as_tensor(np.sqrt(plan.lengths), device=y.device, dtype=torch.float32)
    return stacked.abs() / scale[None, :, None]


def _cqts(y: torch.Tensor, tunings: Sequence[float], sr: int, config: FeatureConfig) -> list[np.ndarray | None]:
    """The CQT magnitude of each row (rows of one tuning, one filter bank, computed together);
    ``None`` for a row the CPU must compute: see :data:`QUIET_FRAME`."""
    from genaudio.features._cqt import cqt_plan

    out: list[np.ndarray | None] = [None] * len(tunings)
    c = config
    for tuning in sorted(set(tunings)):
        rows = [i for i, t in enumerate(tunings) if t == tuning]
        plan = cqt_plan(sr=sr, hop_length=c.hop_length, fmin=c.fmin, n_bins=c.n_octaves * c.bins_per_octave,
                        bins_per_octave=c.bins_per_octave, tuning=tuning)
        if plan is None:  # only librosa.cqt itself applies: the CPU computes it
            continue
        mags = _cqt(y[rows].float(), plan)
        frame_peak = mags.amax(dim=1)
        quiet = (frame_peak < QUIET_FRAME * frame_peak.amax(dim=1, keepdim=True)).any(dim=1).cpu().numpy()
        mags = mags.cpu().numpy()
        for j, i in enumerate(rows):
            out[i] = None if quiet[j] else mags[j]
    return out


def _batch_features(y: torch.Tensor, sr: int, config: FeatureConfig, need: set[str]) -> dict[str, torch.Tensor]:
    """Every torch feature and intermediate of a ``(batch, n)`` tensor (float32, one device)."""
    f = _filters(sr, config)
    dev, dt = y.device, y.dtype
    tensor = functools.partial(torch.as_tensor, device=dev, dtype=dt)
    c = config
    # float64 transform: the quietest bins (near Nyquist after resampling, ~1e-10 of the frame's
    # peak) are below float32 FFT rounding, and spectral_contrast's valleys are made of them
    stft = torch.stft(y.double(), n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length or c.n_fft,
                      window=torch.as_tensor(f["window"], device=dev, dtype=torch.float64), center=True,
                      pad_mode="constant", return_complex=True)
    mag = stft.abs().to(dt)
    mel = tensor(f["mel"]) @ (mag ** 2)
    log_mel = _power_to_db(mel)
    out = {"magnitude": mag, "mel": mel, "log_mel": log_mel, "melspectrogram": mel}
    out["mfcc"] = tensor(f["dct"]) @ log_mel
    out["rms"] = _frames(y, c.n_fft, c.hop_length, "constant").pow(2).mean(dim=-1).sqrt()[:, None, :]
    out["zero_crossing_rate"] = _zcr(y, c.n_fft, c.hop_length)[:, None, :]
    out.update(_spectral(mag, tensor(f["freq"]), c.roll_percent))
    out["spectral_contrast"] = _contrast(mag, f["freq"], sr, c.n_bands)
    out["onset"] = _onset(log_mel, c.n_fft, c.hop_length, median=False)
    out["onset_median"] = _onset(log_mel, c.n_fft, c.hop_length, median=True)
    out["onset_strength"] = out["onset"][:, None, :]
    if "tempogram" in need or "tempogram_ratio" in need:
        out["tempogram"] = _tempogram(out["onset"], tensor(f["tempo_window"]))
    if "stft_db" in need:
        db = 20.0 * torch.log10(torch.clamp(mag, min=1e-5))
        out["stft_db"] = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - _TOP_DB)
    return out


def analyses(ys: Sequence[np.ndarray] | np.ndarray, sr: int, *, config: FeatureConfig | None = None,
             features: Sequence[str] = (), device: str | torch.device = "cpu") -> list[Analysis]:
    """Analyses of equal-length segments with the torch features computed as one batch.

    Parameters
    ----------
    ys : array [shape=(batch, n)] or sequence of (n,) arrays of one length
        Mono segments (float, full scale = 1).
    sr : int
        Sample rate (Hz).
    config : FeatureConfig
    features : sequence of str
        The features that will be asked for (torch computes only what they need of the optional
        parts: the tempogram, the log STFT).
    device : str or torch.device
        Where the batch is computed (``"cuda"``, ``"cpu"``...).

    Returns
    -------
    list of Analysis
        One per segment, with the torch features and the shared intermediates (mel, log_mel,
        onset envelopes, tempogram) in place; ``a.compute(features)`` completes the rest
        on the CPU.
    """
    config = config or FeatureConfig()
    out = [Analysis(np.asarray(y), sr, config=config) for y in ys]  # validates every segment
    if not out:
        return out
    with torch.no_grad():
        y = torch.as_tensor(np.stack([a.y for a in out]), device=device)
        res = _batch_features(y, sr, config, set(features))
        if "chroma_stft" in features:
            # The tuning estimates (chroma_stft's and the CQT's) are 0.01-bin histogram peaks:
            # a float32 rounding difference in the spectrum can move one by a bin and change the
            # whole feature, so they come from the CPU's own STFT, as on the numpy path.
            tunings = [estimate_tuning(a.power, sr=sr, bins_per_octave=config.n_chroma) for a in out]
            res["chroma_stft"] = _chroma(tunings, res["magnitude"], sr, config)
        del res["magnitude"]
        host = {k: v.detach().cpu().numpy() for k, v in res.items()}
        if set(features) & CQT_FEATURES:
            # the CQT's tuning, like chroma_stft's, comes from the CPU's own STFT (see above)
            cqts = _cqts(y, [a.cqt_tuning for a in out], sr, config)
            for a, cqt in zip(out, cqts):
                if cqt is not None:
                    a.provide("cqt", cqt)
    intermediates = ("mel", "log_mel", "onset", "onset_median", "tempogram")
    for b, a in enumerate(out):
        for key in intermediates:
            if key in host:
                a.provide(key, host[key][b])
        for name in TORCH_FEATURES:
            if name in host:
                a.provide(f"feature:{name}", np.asarray(host[name][b], dtype=np.float32))
    return out
