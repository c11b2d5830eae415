#!/usr/bin/env python
"""Synthesise the labelled example clips in ``samples/``.

Every clip is made here from a fixed seed (additive and FM instruments playing melodies and
chords with envelopes, synthesised drum kits playing patterns at a tempo, noise textures), so the
origin of the samples is reproducible: re-running writes the same audio. The clips cover several
formats (WAV, FLAC, Ogg/Vorbis, MP3), mono and stereo, and several sample rates.

Usage::

    python scripts/make_samples.py --out samples

Each label is a sub-folder (``piano/``, ``bells/``, ``strings/``, ``drums/``, ``noise/``); ``samples/README.md``
lists every clip with its content, format, rate, channels and duration.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from scipy import signal

# ---------------------------------------------------------------------------------------------
# Music helpers


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def adsr(n: int, sr: int, a: float, d: float, s: float, r: float) -> np.ndarray:
    """Attack/decay/sustain/release envelope of ``n`` samples (times in seconds, s a level)."""
    t = np.arange(n) / sr
    dur = n / sr
    env = np.where(t < a, t / max(a, 1e-6), s + (1 - s) * np.exp(-(t - a) / max(d, 1e-6)))
    rel_start = max(dur - r, a)
    env = env * np.clip((dur - t) / max(dur - rel_start, 1e-6), 0, 1)
    return env


def place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    end = min(out.shape[-1], start + x.shape[-1])
    if end > start:
        out[..., start:end] += x[..., : end - start]


def pan(x: np.ndarray, position: float) -> np.ndarray:
    """Equal-power pan of a mono signal, position in [-1, 1] -> (2, n)."""
    angle = (position + 1) * np.pi / 4
    return np.stack([np.cos(angle) * x, np.sin(angle) * x])


def normalise(x: np.ndarray, peak: float = 0.8) -> np.ndarray:
    return (x * (peak / max(np.abs(x).max(), 1e-9))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Instruments


def piano_note(f0: float, dur: float, sr: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    """Additive piano-like tone: inharmonic partials decaying faster the higher they are."""
    n = int(dur * sr)
    t = np.arange(n) / sr
    b = 0.0004  # string stiffness: partial k sits at k f0 sqrt(1 + b k^2)
    x = np.zeros(n)
    for k in range(1, 13):
        fk = k * f0 * np.sqrt(1 + b * k * k)
        if fk > 0.45 * sr:
            break
        amp = vel / k ** 1.2 * (1.0 + 0.1 * rng.standard_normal())
        decay = 0.8 + 0.55 * k
        x += amp * np.exp(-decay * t) * np.sin(2 * np.pi * fk * t + rng.uniform(0, 2 * np.pi))
    hammer = np.exp(-t * 300) * rng.standard_normal(n) * 0.02 * vel
    return (x + hammer) * adsr(n, sr, 0.004, 10.0, 1.0, 0.08)


def string_note(f0: float, dur: float, sr: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    """Bowed-string ensemble: three detuned band-limited sawtooths with vibrato and slow attack."""
    n = int(dur * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for detune in (-0.006, 0.0, 0.0055):
        vib = 1 + 0.004 * np.sin(2 * np.pi * (5.2 + rng.uniform(-0.4, 0.4)) * t + rng.uniform(0, 6.28))
        phase = 2 * np.pi * np.cumsum(f0 * (1 + detune) * vib) / sr
        for k in range(1, 16):
            if k * f0 > 0.45 * sr:
                break
            x += (1.0 / k) * np.sin(k * phase)
    sos = signal.butter(2, min(4000, 0.45 * sr), btype="low", fs=sr, output="sos")
    return vel * signal.sosfilt(sos, x) * adsr(n, sr, 0.25, 0.6, 0.85, 0.35) / 3


def fm_bell(f0: float, dur: float, sr: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    """Two-operator FM (ratio 3.5) with a decaying modulation index: a bell / electric piano."""
    n = int(dur * sr)
    t = np.arange(n) / sr
    index = 4.0 * np.exp(-3.0 * t)
    mod = index * np.sin(2 * np.pi * 3.5 * f0 * t)
    return vel * np.sin(2 * np.pi * f0 * t + mod) * np.exp(-2.2 * t) * adsr(n, sr, 0.002, 10, 1, 0.05)


def kick(sr: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    n = int(0.45 * sr)
    t = np.arange(n) / sr
    f = 48 + 110 * np.exp(-t * 30)
    body = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 7)
    click = rng.standard_normal(n) * np.exp(-t * 400) * 0.3
    return vel * (body + click)


def snare(sr: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    n = int(0.3 * sr)
    t = np.arange(n) / sr
    sos = signal.butter(2, [900, min(7000, 0.45 * sr)], btype="band", fs=sr, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n)) * np.exp(-t * 18)
    tone = np.sin(2 * np.pi * 185 * t) * np.exp(-t * 25) * 0.6
    return vel * (noise * 1.4 + tone)


def hat(sr: int, vel: float, rng: np.random.Generator, open_: bool = False) -> np.ndarray:
    n = int((0.35 if open_ else 0.08) * sr)
    t = np.arange(n) / sr
    sos = signal.butter(4, min(7000, 0.4 * sr), btype="high", fs=sr, output="sos")
    return vel * 0.5 * signal.sosfilt(sos, rng.standard_normal(n)) * np.exp(-t * (9 if open_ else 60))


# ---------------------------------------------------------------------------------------------
# Clips: each returns (channels, samples) float


def _sequence(notes, instrument, sr, seconds, rng, stereo_spread=0.0):
    """notes: list of (start_s, dur_s, midi, velocity)."""
    out = np.zeros((2 if stereo_spread else 1, int(seconds * sr)))
    for start, dur, note, vel in notes:
        x = instrument(midi_hz(note), dur, sr, vel, rng)
        if stereo_spread:
            x = pan(x, np.clip((note - 60) / 24 * stereo_spread, -1, 1))
        place(out, x, int(start * sr))
    return out


CHORDS = {"C": [60, 64, 67], "Am": [57, 60, 64], "F": [53, 57, 60], "G": [55, 59, 62],
          "Dm": [50, 53, 57], "Em": [52, 55, 59], "D": [50, 54, 57], "Bm": [47, 50, 54]}


def piano_melody(sr, seconds, rng, stereo):
    """A C-major melody over I-vi-IV-V chords at 96 BPM."""
    beat = 60 / 96
    melody = [72, 74, 76, 79, 76, 74, 72, 67, 69, 72, 74, 72, 71, 67, 71, 74]
    notes = []
    for i, m in enumerate(melody * 2):
        if i * beat >= seconds - 0.5:
            break
        notes.append((i * beat, beat * 1.6, m, 0.5 + 0.2 * rng.random()))
    for bar, name in enumerate(["C", "Am", "F", "G"] * 2):
        if bar * 4 * beat >= seconds - 0.5:
            break
        for note in CHORDS[name]:
            notes.append((bar * 4 * beat, 4 * beat, note - 12, 0.3))
    return _sequence(notes, piano_note, sr, seconds, rng, 0.6 if stereo else 0.0)


def piano_arpeggio(sr, seconds, rng, stereo):
    """Arpeggiated chords in G major (G-Em-C-D), eighth notes at 120 BPM."""
    step = 60 / 120 / 2
    notes = []
    i = 0
    for name in ["G", "Em", "C", "D"] * 4:
        pattern = CHORDS[name] + [CHORDS[name][0] + 12, CHORDS[name][2], CHORDS[name][1]]
        for k in range(8):
            start = i * step
            if start < seconds - 0.6:
                notes.append((start, 0.9, pattern[k % 6] + (12 if k >= 6 else 0), 0.45 + 0.15 * rng.random()))
            i += 1
    return _sequence(notes, piano_note, sr, seconds, rng, 0.8 if stereo else 0.0)


def strings_pad(sr, seconds, rng, stereo):
    """Sustained string chords Am-F-C-G, two seconds each."""
    notes = []
    for bar, name in enumerate(["Am", "F", "C", "G", "Am", "F"]):
        start = bar * 2.0
        if start >= seconds - 0.5:
            break
        for note in CHORDS[name] + [CHORDS[name][0] - 12]:
            notes.append((start, 2.3, note, 0.35))
    return _sequence(notes, string_note, sr, seconds, rng, 0.7 if stereo else 0.0)


def strings_melody(sr, seconds, rng, stereo):
    """A slow D-minor string melody over a drone."""
    line = [62, 65, 69, 67, 65, 64, 62, 61, 62]
    notes = [(i * 1.0, 1.2, m, 0.5) for i, m in enumerate(line) if i * 1.0 < seconds - 0.5]
    notes.append((0.0, seconds - 0.2, 50, 0.3))
    return _sequence(notes, string_note, sr, seconds, rng, 0.5 if stereo else 0.0)


def bells(sr, seconds, rng, stereo):
    """FM bells playing a seeded C-pentatonic phrase, 160 BPM grid."""
    scale = [60, 62, 64, 67, 69, 72, 74, 76]
    notes = []
    t = 0.0
    while t < seconds - 1.0:
        notes.append((t, 1.8, scale[rng.integers(len(scale))], 0.5))
        t += 0.375 * rng.integers(1, 3)
    return _sequence(notes, fm_bell, sr, seconds, rng, 0.8 if stereo else 0.0)


def bells_chords(sr, seconds, rng, stereo):
    """FM bells striking chords Dm-G-C-Am, one per 1.5 s."""
    notes = []
    for i, name in enumerate(["Dm", "G", "C", "Am"] * 3):
        if i * 1.5 >= seconds - 1.0:
            break
        for note in CHORDS[name]:
            notes.append((i * 1.5, 2.0, note + 12, 0.35))
    return _sequence(notes, fm_bell, sr, seconds, rng, 0.8 if stereo else 0.0)


def _drums(sr, seconds, rng, stereo, bpm, kicks, snares, hats, opens=()):
    """16-step pattern; kicks/snares/hats are step indices within a bar."""
    step = 60 / bpm / 4
    out = np.zeros((2 if stereo else 1, int(seconds * sr)))
    n_steps = int(seconds / step)
    for i in range(n_steps):
        s = i % 16
        t = int(i * step * sr)
        parts = []
        if s in kicks:
            parts.append((kick(sr, 0.9 + 0.1 * rng.random(), rng), 0.0))
        if s in snares:
            parts.append((snare(sr, 0.7 + 0.1 * rng.random(), rng), 0.1))
        if s in hats:
            parts.append((hat(sr, 0.35 + 0.15 * rng.random(), rng), 0.5))
        if s in opens:
            parts.append((hat(sr, 0.4, rng, open_=True), -0.4))
        for x, p in parts:
            place(out, pan(x, p) if stereo else x[None], t)
    return out


def drums_rock(sr, seconds, rng, stereo):
    """Rock beat at 120 BPM: kick on 1 and 3, snare on 2 and 4, eighth-note hats."""
    return _drums(sr, seconds, rng, stereo, 120, {0, 8, 10}, {4, 12}, set(range(0, 16, 2)))


def drums_funk(sr, seconds, rng, stereo):
    """Syncopated funk beat at 96 BPM with sixteenth-note hats and an open hat."""
    return _drums(sr, seconds, rng, stereo, 96, {0, 3, 7, 10}, {4, 12, 15}, set(range(16)) - {14}, {14})


def drums_halftime(sr, seconds, rng, stereo):
    """Half-time beat at 140 BPM: snare on 3, sparse kicks."""
    return _drums(sr, seconds, rng, stereo, 140, {0, 6, 11}, {8}, set(range(0, 16, 2)), {6})


def _colored(n, sr, rng, exponent):
    """Noise with power spectrum ~ 1/f^exponent."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    return np.fft.irfft(spec / f ** (exponent / 2), n)


def noise_wind(sr, seconds, rng, stereo):
    """Wind: brown-ish noise through a slowly sweeping band-pass, with gusts."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    chans = []
    for c in range(2 if stereo else 1):
        x = _colored(n, sr, rng, 1.0)
        out = np.zeros(n)
        hop = sr // 10
        for i in range(0, n, hop):  # piecewise band-pass with a moving centre
            fc = 300 + 250 * np.sin(2 * np.pi * 0.13 * i / sr + c)
            sos = signal.butter(2, [fc * 0.6, fc * 1.6], btype="band", fs=sr, output="sos")
            seg = signal.sosfiltfilt(sos, x[max(0, i - hop): i + 2 * hop])
            a = hop if i >= hop else 0
            out[i:i + hop] = seg[a:a + min(hop, n - i)]
        gust = 0.5 + 0.5 * np.sin(2 * np.pi * 0.2 * t + 1.3 * c) ** 2
        chans.append(out * gust)
    return np.stack(chans)


def noise_rain(sr, seconds, rng, stereo):
    """Rain: pink noise bed plus random droplets (short resonant clicks)."""
    n = int(seconds * sr)
    chans = []
    for c in range(2 if stereo else 1):
        x = _colored(n, sr, rng, 1.0)
        x = x / np.abs(x).max() * 0.3
        for _ in range(int(seconds * 40)):
            f = rng.uniform(1500, min(6000, 0.45 * sr))
            m = int(0.015 * sr)
            tt = np.arange(m) / sr
            drop = np.sin(2 * np.pi * f * tt) * np.exp(-tt * 400) * rng.uniform(0.2, 0.8)
            place(x, drop, int(rng.integers(0, n - m)))
        chans.append(x)
    return np.stack(chans)


def noise_surf(sr, seconds, rng, stereo):
    """Surf: white noise low-passed, with waves swelling every ~4 s."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    sos = signal.butter(3, 2500, btype="low", fs=sr, output="sos")
    chans = []
    for c in range(2 if stereo else 1):
        x = signal.sosfilt(sos, rng.standard_normal(n))
        swell = (0.5 - 0.5 * np.cos(2 * np.pi * t / 4.2 + 0.4 * c)) ** 2
        chans.append(x * (0.1 + swell))
    return np.stack(chans)


# ---------------------------------------------------------------------------------------------
# The catalogue of clips


@dataclass(frozen=True)
class Clip:
    label: str
    name: str
    make: Callable
    seconds: float
    sr: int
    stereo: bool
    fmt: str  # wav, flac, ogg, mp3
    seed: int


CLIPS = [
    Clip("piano", "piano_melody_c", piano_melody, 10.0, 22050, False, "wav", 1),
    Clip("piano", "piano_arpeggio_g", piano_arpeggio, 8.0, 44100, True, "mp3", 2),
    Clip("bells", "bells_pentatonic", bells, 6.0, 16000, False, "flac", 3),
    Clip("bells", "bells_chords", bells_chords, 7.0, 22050, True, "mp3", 12),
    Clip("strings", "strings_pad_am", strings_pad, 10.0, 48000, True, "ogg", 4),
    Clip("strings", "strings_melody_dm", strings_melody, 8.0, 16000, False, "flac", 5),
    Clip("drums", "drums_rock_120", drums_rock, 8.0, 44100, True, "flac", 6),
    Clip("drums", "drums_funk_96", drums_funk, 10.0, 22050, False, "ogg", 7),
    Clip("drums", "drums_halftime_140", drums_halftime, 7.0, 48000, False, "mp3", 8),
    Clip("noise", "noise_rain", noise_rain, 6.0, 16000, False, "wav", 9),
    Clip("noise", "noise_wind", noise_wind, 8.0, 44100, True, "ogg", 10),
    Clip("noise", "noise_surf", noise_surf, 8.0, 48000, True, "mp3", 11),
]

_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
            "mp3": ("MP3", "MPEG_LAYER_III")}


# libsndfile gives each Ogg stream a random serial number; fix it so files are byte-identical.
_OGG_SERIAL = 0x67656E61  # "gena"


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


def fix_ogg_serial(path: Path, serial: int = _OGG_SERIAL) -> None:
    """Rewrite every page's stream serial number (and CRC) of a single-stream Ogg file."""
    data = bytearray(path.read_bytes())
    table = _ogg_crc_table()
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS":
            raise ValueError(f"{path}: unexpected bytes at {pos}")
        nseg = data[pos + 26]
        length = 27 + nseg + sum(data[pos + 27:pos + 27 + nseg])
        data[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        data[pos + 22:pos + 26] = b"\0\0\0\0"
        crc = 0
        for b in data[pos:pos + length]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) & 0xFF) ^ b]
        data[pos + 22:pos + 26] = crc.to_bytes(4, "little")
        pos += length
    path.write_bytes(bytes(data))


def write_clip(clip: Clip, out: Path) -> Path:
    rng = np.random.default_rng(clip.seed)
    x = clip.make(clip.sr, clip.seconds, rng, clip.stereo)
    x = normalise(x, 0.8 if clip.label != "noise" else 0.6)
    # 10 ms fades: no clicks at the edges.
    fade = int(0.01 * clip.sr)
    ramp = np.linspace(0, 1, fade, dtype=np.float32)
    x[..., :fade] *= ramp
    x[..., -fade:] *= ramp[::-1]
    folder = out / clip.label
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{clip.name}.{clip.fmt}"
    fmt, subtype = _FORMATS[clip.fmt]
    sf.write(path, x.T, clip.sr, format=fmt, subtype=subtype)
    if clip.fmt == "ogg":
        fix_ogg_serial(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("samples"), help="output folder (default: samples)")
    ap.add_argument("--clean", action="store_true",
                    help="remove the label folders this script writes before writing them")
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.clean:
        for label in {c.label for c in CLIPS}:
            shutil.rmtree(out / label, ignore_errors=True)
    rows = []
    total = 0
    for clip in CLIPS:
        path = write_clip(clip, out)
        size = path.stat().st_size
        total += size
        info = sf.info(str(path))
        rows.append(f"| `{path.relative_to(out)}` | {clip.label} | {clip.make.__doc__.strip()} | "
                    f"{info.format}/{info.subtype} | {info.samplerate} | {info.channels} | "
                    f"{info.frames / info.samplerate:.1f} | {size / 1024:.0f} |")
        print(f"{path}  {info.samplerate} Hz  {info.channels} ch  {size / 1024:.0f} KiB", file=sys.stderr)
    readme = [
        "# Example clips",
        "",
        "Synthesised by `scripts/make_samples.py` (seeded: re-running reproduces them):",
        "`python scripts/make_samples.py --out samples` (or `make samples`). Sub-folders are labels.",
        "",
        "| file | label | content | format | rate (Hz) | channels | seconds | KiB |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Total: {total / 2**20:.2f} MiB.",
        "",
    ]
    (out / "README.md").write_text("\n".join(readme))
    print(f"wrote {len(CLIPS)} clips, {total / 2**20:.2f} MiB, to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
