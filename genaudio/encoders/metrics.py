"""Rate-distortion metrics of a reconstruction against the original waveform.

All distortion metrics compare magnitude spectrograms, so they are meaningful after Griffin-Lim
(which loses the phase); waveform SNR is only meaningful for waveform coders (mu-law).
The analysis is fixed (``n_fft=1024``, ``hop=256``, Hann, centred) whatever the encoder's own
framing, so every encoder is measured the same way.
"""
from __future__ import annotations

import numpy as np

from genaudio.encoders.framing import stft_magnitude
from genaudio.errors import EncoderError

METRIC_N_FFT = 1024
METRIC_HOP = 256
#: dynamic range of the log-spectral distance: both spectra are floored this many dB below the
#: original's peak (librosa's ``top_db`` convention), so inaudible bins far below the music do
#: not dominate the average.
LSD_TOP_DB = 80.0
#: clips quieter than this RMS (-80 dBFS) are not measured by :func:`evaluate`
SILENT_RMS = 1e-4
MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def _pair(y: np.ndarray, y_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float32).ravel()
    y_hat = np.asarray(y_hat, dtype=np.float32).ravel()
    if y.size == 0:
        raise EncoderError("cannot measure distortion of an empty waveform")
    n = len(y)
    y_hat = y_hat[:n] if len(y_hat) >= n else np.pad(y_hat, (0, n - len(y_hat)))
    return y, y_hat


def spectral_convergence(y, y_hat, *, n_fft: int = METRIC_N_FFT, hop_length: int = METRIC_HOP) -> float:
    """``||S - S_hat||_F / ||S||_F`` of STFT magnitudes (0 is perfect, 1 is as bad as silence)."""
    y, y_hat = _pair(y, y_hat)
    S = stft_magnitude(y, n_fft=n_fft, hop_length=hop_length)
    S_hat = stft_magnitude(y_hat, n_fft=n_fft, hop_length=hop_length)
    return float(np.linalg.norm(S - S_hat) / max(np.linalg.norm(S), 1e-12))


def log_spectral_distance(y, y_hat, *, n_fft: int = METRIC_N_FFT, hop_length: int = METRIC_HOP,
                          top_db: float = LSD_TOP_DB) -> float:
    """Log-spectral distance in dB.

    ``mean_t sqrt(mean_f (10 log10 max(|S|^2, f) - 10 log10 max(|S_hat|^2, f))^2)`` over STFT
    frames, where the floor ``f`` is ``top_db`` (80) dB below the original's peak power.
    """
    y, y_hat = _pair(y, y_hat)
    P = stft_magnitude(y, n_fft=n_fft, hop_length=hop_length) ** 2
    P_hat = stft_magnitude(y_hat, n_fft=n_fft, hop_length=hop_length) ** 2
    floor = max(float(P.max()), 1e-20) * 10 ** (-top_db / 10)
    d = 10 * np.log10(np.maximum(P, floor)) - 10 * np.log10(np.maximum(P_hat, floor))
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=0))))


def multi_resolution_stft_distance(y, y_hat, *, resolutions=MRSTFT_RESOLUTIONS) -> float:
    """Mean over resolutions of spectral convergence + mean ``|log S - log S_hat|`` (natural log).

    The multi-resolution STFT loss of Parallel WaveGAN (Yamamoto et al., 2020), as a distance.
    Resolutions are ``(n_fft, hop)`` pairs: 512/128, 1024/256, 2048/512.
    """
    y, y_hat = _pair(y, y_hat)
    total = 0.0
    for n_fft, hop in resolutions:
        S = stft_magnitude(y, n_fft=n_fft, hop_length=hop)
        S_hat = stft_magnitude(y_hat, n_fft=n_fft, hop_length=hop)
        sc = np.linalg.norm(S - S_hat) / max(np.linalg.norm(S), 1e-12)
        mag = np.mean(np.abs(np.log(S + 1e-7) - np.log(S_hat + 1e-7)))
        total += sc + mag
    return float(total / len(resolutions))


def snr_db(y, y_hat) -> float:
    """Waveform signal-to-noise ratio in dB (only meaningful for waveform coders such as mu-law)."""
    y, y_hat = _pair(y, y_hat)
    noise = float(np.sum((y - y_hat) ** 2))
    return float(10 * np.log10(max(float(np.sum(y ** 2)), 1e-20) / max(noise, 1e-20)))


def frame_comb(y, *, hop_length: int, n_fft: int | None = None) -> float:
    """How strongly a waveform repeats at a frame decoder's hop: a buzz at ``sr / hop_length``
    (or a half or a quarter of it), which a frame vocoder with an ill-learned phase makes.

    The real cepstrum of the log power spectrum (``n_fft``, averaged over frames) at the
    quefrencies of one, two and four hops (samples), in median absolute deviations above the
    cepstrum's median between 0.75 and 5 hops. No reference is needed. Real music scores ~3-6
    (measured on the development corpus); a click every hop, hundreds.

    Parameters
    ----------
    y : np.ndarray (samples,)
    hop_length : int
        The decoder's hop, samples; ``5 * hop_length`` must be below ``n_fft // 2``.
    n_fft : int, optional
        Default: the smallest power of two from 4096 up that is long enough for the hop
        (4096 for hops up to 409 samples, 8192 up to 819).

    Returns
    -------
    float
        The largest of the three peaks, in robust spreads (0 for a signal shorter than ``n_fft``).
    """
    y = np.asarray(y, dtype=np.float32)
    if n_fft is None:
        n_fft = 4096
        while 5 * hop_length >= n_fft // 2:
            n_fft *= 2
    if 5 * hop_length >= n_fft // 2:
        raise EncoderError(f"frame_comb needs 5 * hop_length < n_fft / 2, got hop {hop_length}, n_fft {n_fft}")
    if len(y) < n_fft:
        return 0.0
    power = stft_magnitude(y, n_fft=n_fft, hop_length=n_fft // 4) ** 2
    cepstrum = np.abs(np.fft.irfft(np.log(power + 1e-10), axis=0)).mean(axis=1)
    band = cepstrum[int(0.75 * hop_length):5 * hop_length]
    median = np.median(band)
    spread = np.median(np.abs(band - median)) + 1e-12
    return float(max(cepstrum[q - 2:q + 3].max() - median for q in (hop_length, 2 * hop_length, 4 * hop_length))
                 / spread)


#: A set of clips buzzes audibly when its median frame comb is this many times real music's:
#: Griffin-Lim's reconstructions measure 2-3.5x real, frame-by-frame vocoders 35-160x
#: (docs/encoders.md, "The learned decoder's buzz").
BUZZ_RATIO = 10.0
#: Real music's frame comb where no real clips were measured (3.5-8.7 on the development corpus).
REAL_FRAME_COMB = 6.0


def buzzes(comb: float, *, real: float | None = None) -> bool:
    """Whether a set's median :func:`frame_comb` is a buzz at the hop: at least :data:`BUZZ_RATIO`
    times real music's (``real``, the same measure of real clips; default :data:`REAL_FRAME_COMB`)."""
    return comb >= BUZZ_RATIO * (real if real is not None and real > 0 else REAL_FRAME_COMB)


def median_frame_comb(clips, *, hop_length: int) -> float:
    """Median :func:`frame_comb` over clips (each ``(samples,)``): a set's buzz at the hop."""
    return float(np.median([frame_comb(y, hop_length=hop_length) for y in clips]))


def distortion(y, y_hat, *, waveform_coder: bool = False) -> dict[str, float]:
    """All distortion metrics of one clip: ``sc``, ``lsd_db``, ``mrstft`` (+ ``snr_db``)."""
    out = {
        "sc": spectral_convergence(y, y_hat),
        "lsd_db": log_spectral_distance(y, y_hat),
        "mrstft": multi_resolution_stft_distance(y, y_hat),
    }
    if waveform_coder:
        out["snr_db"] = snr_db(y, y_hat)
    return out


def evaluate(encoder, clips, *, progress: bool = False) -> dict[str, float]:
    """Rate and mean distortion of ``encoder`` over held-out waveforms ``clips``.

    Silent clips (RMS below :data:`SILENT_RMS`) are left out: the spectral measures are relative
    to the original's energy, so one silent clip (a track's lead-in) decoded to the faint noise
    every decoder leaves would outweigh all the others (a spectral convergence of ~1e9).

    Returns ``bitrate`` (bits/s), ``compression_ratio`` (vs 16-bit PCM at the encoder's sample
    rate), ``code_rate_hz``, ``dim``, ``bits_per_value``, ``n_clips`` (measured),
    ``n_silent`` (left out) and the mean of each :func:`distortion` metric.
    """
    clips = [np.asarray(c, dtype=np.float32) for c in clips]
    clips = [c for c in clips if c.size]
    if not clips:
        raise EncoderError("no held-out clips to measure")
    audible = [c for c in clips if np.sqrt(np.mean(np.square(c, dtype=np.float64))) >= SILENT_RMS]
    n_silent = len(clips) - len(audible)
    if not audible:
        raise EncoderError(f"all {len(clips)} held-out clips are silent (RMS below {SILENT_RMS:g}): nothing to measure")
    clips = audible
    if not encoder.has_audio_decoder:
        raise EncoderError("this encoder has no audio decoder: audio metrics do not apply")
    waveform = encoder.takes_waveform
    rows = []
    it = clips
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(clips, desc=f"measure {encoder.kind}", unit="clip", leave=False)
    for y in it:
        rows.append(distortion(y, encoder.reconstruct(y), waveform_coder=waveform))
    out = {
        "encoder": encoder.kind,
        "dim": int(encoder.dim),
        "precision": encoder.precision,
        "code_rate_hz": float(encoder.code_rate_hz),
        "bits_per_value": int(encoder.bits_per_value),
        "bitrate": float(encoder.bitrate),
        "compression_ratio": float(encoder.compression_ratio),
        "n_clips": len(rows),
        "n_silent": n_silent,
    }
    for k in rows[0]:
        out[k] = float(np.mean([r[k] for r in rows]))
    return out
