"""The bad-input corpus shared by the audio and extraction tests.

:func:`make_bad_corpus` writes small, deterministic files that exercise every way a real corpus
goes wrong, and says what :func:`genaudio.audio.load` must do with each: raise a specific
:class:`~genaudio.errors.AudioError` subclass, or ``"ok"``.

Limits: the "too long" file only exceeds a limit the test sets itself; use :data:`BAD_CORPUS_CONFIG`
(``max_duration_s=LONG_LIMIT_S``) when loading the corpus, so every expectation holds.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from genaudio.config import AudioConfig
from genaudio.errors import (
    AudioTooLongError,
    AudioTooShortError,
    EmptyFileError,
    InvalidSamplesError,
    NotAudioError,
    TruncatedAudioError,
)

#: Duration limit (seconds) under which ``too_long.wav`` is refused; every other file is shorter.
LONG_LIMIT_S = 20.0

#: The AudioConfig to load the corpus with (defaults otherwise: 22050 Hz mono, soxr_hq).
BAD_CORPUS_CONFIG = AudioConfig(max_duration_s=LONG_LIMIT_S)


def _tone(sr: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A chord with a little noise, shape (frames, channels), float32 in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sr * seconds))) / sr
    x = sum(0.12 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))
    x = x * np.minimum(1.0, t / 0.02)  # no click at the start
    out = np.stack([x * (1.0 - 0.1 * c) + 0.01 * rng.standard_normal(t.size) for c in range(channels)], 1)
    return out.astype(np.float32)


def _truncate(src: Path, dst: Path, fraction: float) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])


def _midi_bytes() -> bytes:
    """A minimal format-0 MIDI file: one track, middle C on then off."""
    track = bytes([0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def _mod_bytes() -> bytes:
    """A minimal 4-channel ProTracker MOD: 31 empty sample slots, one empty pattern, 'M.K.'."""
    title = b"genaudio test".ljust(20, b"\0")
    samples = b"".join(b"".ljust(22, b"\0") + struct.pack(">HBBHH", 0, 0, 0, 0, 1) for _ in range(31))
    order = bytes([1, 127]) + bytes(128)
    pattern = bytes(64 * 4 * 4)
    return title + samples + order + b"M.K." + pattern


def _xm_bytes() -> bytes:
    """The header of a FastTracker XM module (enough to be recognised)."""
    head = b"Extended Module: " + b"genaudio test".ljust(20, b"\0") + b"\x1a" + b"genaudio".ljust(20, b" ")
    head += struct.pack("<H", 0x0104) + struct.pack("<I", 276) + bytes(272)
    return head


def make_bad_corpus(directory: str | Path) -> dict[str, object]:
    """Write the bad-input corpus into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Created if missing.

    Returns
    -------
    dict
        File name -> expected outcome of ``load(path, config=BAD_CORPUS_CONFIG)``: an
        ``AudioError`` subclass, or the string ``"ok"``.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    expected: dict[str, object] = {}

    def put(name: str, outcome: object) -> Path:
        expected[name] = outcome
        return d / name

    put("empty.wav", EmptyFileError).write_bytes(b"")

    # Valid compressed files, then cut: the decoder stops early (or fails) mid-stream.
    whole = d / "_whole_src"
    whole.mkdir(exist_ok=True)
    sf.write(whole / "full.mp3", _tone(44100, 4.0, 2, seed=1), 44100, format="MP3")
    sf.write(whole / "full.ogg", _tone(44100, 4.0, 2, seed=2), 44100, format="OGG", subtype="VORBIS")
    sf.write(whole / "full.flac", _tone(22050, 4.0, 1, seed=3), 22050, format="FLAC")
    sf.write(whole / "full.wav", _tone(22050, 4.0, 1, seed=4), 22050, format="WAV", subtype="PCM_16")
    sf.write(whole / "full.aiff", _tone(22050, 4.0, 2, seed=10), 22050, format="AIFF")
    sf.write(whole / "full.opus", _tone(48000, 3.0, 1, seed=11), 48000, format="OGG", subtype="OPUS")
    _truncate(whole / "full.mp3", put("truncated.mp3", TruncatedAudioError), 0.5)
    _truncate(whole / "full.ogg", put("truncated.ogg", TruncatedAudioError), 0.5)
    _truncate(whole / "full.flac", put("truncated.flac", TruncatedAudioError), 0.5)
    _truncate(whole / "full.wav", put("truncated.wav", TruncatedAudioError), 0.5)
    _truncate(whole / "full.aiff", put("truncated.aiff", TruncatedAudioError), 0.5)
    _truncate(whole / "full.opus", put("truncated.opus", TruncatedAudioError), 0.6)
    # Policy: a file missing under 10 % of what its header promises loads (the decodable part);
    # an Ogg stream missing its end-of-stream page is refused however little is lost.
    _truncate(whole / "full.mp3", put("truncated_tail.mp3", "ok"), 0.97)
    _truncate(whole / "full.ogg", put("truncated_tail.ogg", TruncatedAudioError), 0.97)
    # A VBR MP3 without its Xing/LAME length frame: libsndfile estimates its length from the first
    # frames and would silently stop decoding there (at about half of this file).
    mp3 = (whole / "full.mp3").read_bytes()
    first = 10 + ((mp3[6] & 0x7F) << 21 | (mp3[7] & 0x7F) << 14 | (mp3[8] & 0x7F) << 7 | (mp3[9] & 0x7F)) \
        if mp3[:3] == b"ID3" else 0
    first = mp3.index(b"\xff", first)
    tag = max(mp3.find(b"Xing", first, first + 200), mp3.find(b"Info", first, first + 200))
    assert tag > 0, "libsndfile wrote no Xing/Info frame"
    second = mp3.index(mp3[first:first + 2], tag)  # the next frame starts with the same sync bytes
    put("vbr_no_header.mp3", TruncatedAudioError).write_bytes(mp3[:first] + mp3[second:])
    # Untouched copies of formats the samples do not cover.
    (d / "ok.opus").write_bytes((whole / "full.opus").read_bytes())
    expected["ok.opus"] = "ok"
    (d / "ok.aiff").write_bytes((whole / "full.aiff").read_bytes())
    expected["ok.aiff"] = "ok"
    for p in whole.iterdir():
        p.unlink()
    whole.rmdir()

    rng = np.random.default_rng(1234)
    put("random_bytes.wav", NotAudioError).write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    put("text.mp3", NotAudioError).write_text("This is not audio.\nJust some notes about a song.\n" * 40)
    put("notes.txt", NotAudioError).write_text("tempo=120\nkey=C major\n")
    put("tune.mid", NotAudioError).write_bytes(_midi_bytes())
    put("tune.mod", NotAudioError).write_bytes(_mod_bytes())
    put("tune.xm", NotAudioError).write_bytes(_xm_bytes())

    nan = _tone(22050, 1.0, 1, seed=5)
    nan[1000:1010, 0] = np.nan
    sf.write(put("nan.wav", InvalidSamplesError), nan, 22050, subtype="FLOAT")
    inf = _tone(22050, 1.0, 1, seed=6)
    inf[500, 0] = np.inf
    sf.write(put("inf.wav", InvalidSamplesError), inf, 22050, subtype="FLOAT")

    sf.write(put("one_sample.wav", AudioTooShortError), np.array([[0.25]], np.float32), 22050)
    # A valid header with no sample frames at all.
    sf.write(put("no_frames.wav", AudioTooShortError), np.zeros((0, 1), np.float32), 22050)

    sf.write(put("silence.wav", "ok"), np.zeros((22050 * 2, 1), np.float32), 22050)
    sf.write(put("six_channels.wav", "ok"), _tone(48000, 1.5, 6, seed=7), 48000)
    sf.write(put("rate_8k.wav", "ok"), _tone(8000, 2.0, 1, seed=8), 8000)
    sf.write(put("rate_96k.flac", "ok"), _tone(96000, 1.5, 2, seed=9), 96000, format="FLAC",
             subtype="PCM_24")
    # Over LONG_LIMIT_S; 8 kHz PCM_U8-ish size kept small (int16, ~400 kB).
    sf.write(put("too_long.wav", AudioTooLongError), np.zeros((8000 * int(LONG_LIMIT_S + 5), 1), np.int16),
             8000, subtype="PCM_16")
    return expected
