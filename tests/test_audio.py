"""genaudio.audio: decoding, limits, typed errors on bad input, block reads, segmentation."""
from __future__ import annotations

import atexit
import math
import shutil
import sys
import tempfile
import tracemalloc
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from badfiles import BAD_CORPUS_CONFIG, LONG_LIMIT_S, make_bad_corpus
from genaudio import audio as A
from genaudio.config import AudioConfig, SegmentConfig
from genaudio.errors import (
    AudioError,
    AudioTooShortError,
    ConfigError,
    FileMissingError,
    FileTooLargeError,
    NotAudioError,
    TruncatedAudioError,
)

# Measured on samples/ (see docs/audio.md): block-wise soxr resampling differs from the
# whole-file resample by < 5e-7; the test allows 1e-5.
BLOCK_ATOL = 1e-5

# The corpus is written once at collection so each case is its own test (names are fixed).
_BAD_DIR = Path(tempfile.mkdtemp(prefix="genaudio_bad_"))
atexit.register(shutil.rmtree, _BAD_DIR, True)
BAD = make_bad_corpus(_BAD_DIR)
BAD_ERRORS = sorted(k for k, v in BAD.items() if v != "ok")
BAD_OK = sorted(k for k, v in BAD.items() if v == "ok")


def _librosa_load(path, cfg: AudioConfig, **kw):
    y, sr = librosa.load(path, sr=cfg.sample_rate, mono=cfg.mono, res_type=cfg.res_type, **kw)
    return (y if cfg.mono else np.atleast_2d(y)), sr


def _check_message(err: AudioError, path: Path) -> str:
    msg = str(err)
    assert path.name in msg, msg
    assert "\n" not in msg and len(msg) < 400, msg
    assert err.reason and err.reason != "audio"
    return msg


# ---------------------------------------------------------------------------------------------
# Bad input: every case raises its own typed error with a readable message, and nothing hangs


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", BAD_ERRORS)
def test_bad_file_raises_typed_error(name):
    path = _BAD_DIR / name
    expected = BAD[name]
    with pytest.raises(expected) as ei:
        A.load(path, config=BAD_CORPUS_CONFIG)
    assert type(ei.value) is expected
    _check_message(ei.value, path)
    # Block reads and segment iteration refuse the file the same way (possibly after some blocks).
    with pytest.raises(expected):
        for _ in A.iter_blocks(path, config=BAD_CORPUS_CONFIG, block_seconds=0.5):
            pass
    with pytest.raises(expected):
        for _ in A.iter_segments(path, audio=BAD_CORPUS_CONFIG, segment=SegmentConfig(seconds=0.5)):
            pass


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", BAD_OK)
def test_unusual_but_valid_files_load_like_librosa(name):
    path = _BAD_DIR / name
    y, sr = A.load(path, config=BAD_CORPUS_CONFIG)
    assert sr == 22050 and y.ndim == 1 and y.dtype == np.float32
    assert np.isfinite(y).all()
    ref, _ = _librosa_load(path, BAD_CORPUS_CONFIG)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6)
    info = A.probe(path, config=BAD_CORPUS_CONFIG)
    promised = math.ceil(info.frames * 22050 / info.sample_rate)
    if name.startswith("truncated"):  # the decodable part (>= 90 %) of a slightly cut file
        assert A.TRUNCATION_MIN_FRACTION * promised <= len(y) < promised
    else:
        assert len(y) == promised


def test_bad_corpus_covers_the_issue_cases():
    names = set(BAD)
    for required in ("empty.wav", "truncated.mp3", "truncated.ogg", "random_bytes.wav", "text.mp3",
                     "tune.mid", "tune.mod", "nan.wav", "one_sample.wav", "silence.wav",
                     "six_channels.wav", "rate_8k.wav", "rate_96k.flac", "too_long.wav"):
        assert required in names


@pytest.mark.parametrize("name, words", [
    ("tune.mid", "MIDI"), ("tune.mod", "MOD module"), ("tune.xm", "XM module"),
    ("text.mp3", "text file"), ("notes.txt", "text file"), ("random_bytes.wav", "not an audio file"),
])
def test_not_audio_message_names_the_kind(name, words):
    with pytest.raises(NotAudioError, match=words):
        A.probe(_BAD_DIR / name)


def test_truncation_policy():
    # Under 90 % of the promised frames: refused, and the message says how much is there.
    with pytest.raises(TruncatedAudioError, match=r"truncated"):
        A.load(_BAD_DIR / "truncated.mp3")
    # Cut by 3 %: the decodable part loads, close to the full length (4 s).
    y, sr = A.load(_BAD_DIR / "truncated_tail.mp3")
    assert 0.9 * 4.0 <= len(y) / sr < 4.0
    # Header-level evidence is found by probe, before decoding; so is an MP3 libsndfile would
    # decode only partly (VBR, no length tag), with a hint to fix it.
    with pytest.raises(TruncatedAudioError, match="Xing/VBRI length header"):
        A.probe(_BAD_DIR / "vbr_no_header.mp3")
    for name in ("truncated.wav", "truncated.aiff", "truncated.ogg", "truncated.opus"):
        with pytest.raises(TruncatedAudioError):
            A.probe(_BAD_DIR / name)


def test_limits_are_configurable():
    # The duration limit: the same file loads under a larger limit.
    y, sr = A.load(_BAD_DIR / "too_long.wav", config=AudioConfig(max_duration_s=LONG_LIMIT_S + 10))
    assert len(y) / sr == pytest.approx(LONG_LIMIT_S + 5)
    # The minimum duration: one sample loads when the minimum is 0.
    y, sr = A.load(_BAD_DIR / "one_sample.wav", config=AudioConfig(min_duration_s=0.0))
    assert y.shape == (1,) and y[0] == pytest.approx(0.25, abs=1e-4)
    # The size limit is checked on disk before opening.
    path = _BAD_DIR / "six_channels.wav"
    with pytest.raises(FileTooLargeError, match="MB limit") as ei:
        A.probe(path, config=AudioConfig(max_file_mb=0.1))
    _check_message(ei.value, path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileMissingError, match="not found"):
        A.load(tmp_path / "nope.wav")
    with pytest.raises(FileMissingError, match="directory"):
        A.probe(tmp_path)


@pytest.mark.timeout(20)
def test_pipe_does_not_hang(tmp_path):
    import os

    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    with pytest.raises(NotAudioError, match="regular file"):
        A.load(fifo)


def test_argument_errors(sample_files):
    path = sample_files[0]
    with pytest.raises(ConfigError):
        A.load(path, offset=-1.0)
    with pytest.raises(ConfigError):
        A.load(path, duration=0.0)
    with pytest.raises(AudioTooShortError, match="past the end"):
        A.load(path, offset=1000.0)
    with pytest.raises(ConfigError):
        next(A.iter_blocks(path, block_seconds=0))


# ---------------------------------------------------------------------------------------------
# Good files: every sample decodes like librosa.load


CONFIGS = {
    "22k_mono": AudioConfig(),
    "native_multichannel": AudioConfig(sample_rate=None, mono=False),
    "16k_stereo_vhq": AudioConfig(sample_rate=16000, mono=False, res_type="soxr_vhq"),
}


@pytest.mark.parametrize("cfg_name", sorted(CONFIGS))
def test_samples_match_librosa_load(sample_files, cfg_name):
    cfg = CONFIGS[cfg_name]
    for path in sample_files:
        info = A.probe(path)
        y, sr = A.load(path, config=cfg)
        ref, ref_sr = _librosa_load(path, cfg)
        assert sr == ref_sr == (cfg.sample_rate or info.sample_rate)
        assert y.dtype == np.float32
        if cfg.mono:
            assert y.ndim == 1
        else:
            assert y.shape[0] == info.channels
        assert y.shape == ref.shape, path
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6, err_msg=str(path))


def test_probe_reports_the_header(sample_files):
    formats = set()
    for path in sample_files:
        info = A.probe(path)
        formats.add(info.format)
        with sf.SoundFile(path) as fh:
            assert (info.sample_rate, info.channels, info.frames) == (fh.samplerate, fh.channels, fh.frames)
        assert info.duration_s == pytest.approx(info.frames / info.sample_rate)
        assert info.size_bytes == path.stat().st_size
        assert 5.0 <= info.duration_s <= 20.0
    assert formats == {"WAV", "FLAC", "OGG", "MP3"}


def test_samples_cover_rates_channels_labels(sample_files):
    infos = [A.probe(p) for p in sample_files]
    assert len({i.sample_rate for i in infos}) >= 3
    assert {i.channels for i in infos} == {1, 2}
    labels = {}
    for p in sample_files:
        labels.setdefault(p.parent.name, []).append(p)
    assert len(labels) >= 4 and all(len(v) >= 2 for v in labels.values())
    assert sum(p.stat().st_size for p in sample_files) < 5 * 2**20


def test_downmix_is_the_channel_mean(sample_files):
    stereo = [p for p in sample_files if A.probe(p).channels == 2]
    assert stereo
    for path in stereo[:3]:
        y2, sr = A.load(path, config=AudioConfig(sample_rate=None, mono=False))
        y1, sr1 = A.load(path, config=AudioConfig(sample_rate=None, mono=True))
        assert sr == sr1 and y2.shape == (2, y1.shape[0])
        np.testing.assert_allclose(y1, y2.mean(axis=0), atol=1e-7)


def test_resampling_keeps_duration_and_pitch(tmp_path):
    sr = 48000
    t = np.arange(3 * sr) / sr
    sf.write(tmp_path / "a440.flac", 0.5 * np.sin(2 * np.pi * 440 * t), sr)
    for target in (8000, 16000, 22050, 44100, 96000):
        y, out_sr = A.load(tmp_path / "a440.flac", config=AudioConfig(sample_rate=target))
        assert out_sr == target and len(y) == math.ceil(3 * sr * target / sr)
        spec = np.abs(np.fft.rfft(y))
        peak_hz = np.argmax(spec) * target / len(y)
        assert peak_hz == pytest.approx(440, abs=1.0)
        assert np.abs(y[target // 2: -target // 2]).max() == pytest.approx(0.5, abs=0.01)


def test_offset_and_duration(sample_files):
    cfg = AudioConfig(sample_rate=None)
    for path in sample_files:
        full, sr = A.load(path, config=cfg)
        part, sr2 = A.load(path, config=cfg, offset=1.3, duration=2.1)
        ref, _ = _librosa_load(path, cfg, offset=1.3, duration=2.1)
        np.testing.assert_allclose(part, ref, rtol=0, atol=1e-6, err_msg=str(path))
        assert len(part) == int(2.1 * sr)
        if path.suffix in (".wav", ".flac"):  # sample-exact seeking
            start = int(1.3 * sr)
            np.testing.assert_array_equal(part, full[start:start + len(part)])
        # Offset only: the rest of the file; resampled windows match librosa too.
        tail, _ = A.load(path, config=cfg, offset=4.0)
        assert len(tail) == len(full) - int(4.0 * sr)
        win, _ = A.load(path, offset=0.5, duration=1.0)
        ref, _ = _librosa_load(path, AudioConfig(), offset=0.5, duration=1.0)
        np.testing.assert_allclose(win, ref, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Block reads


@pytest.mark.parametrize("cfg_name", sorted(CONFIGS))
def test_iter_blocks_equals_load(sample_files, cfg_name):
    cfg = CONFIGS[cfg_name]
    for path in sample_files:
        whole, sr = A.load(path, config=cfg)
        for block_seconds in (0.3, 2.0):
            blocks = list(A.iter_blocks(path, config=cfg, block_seconds=block_seconds))
            pos = 0
            for start_s, y in blocks:
                assert start_s == pytest.approx(pos / sr)
                assert y.shape[:-1] == whole.shape[:-1]
                # Block length is bounded by the block size (plus one resampling grid step).
                assert y.shape[-1] <= block_seconds * sr + sr * 0.02 + 1
                pos += y.shape[-1]
            cat = np.concatenate([y for _, y in blocks], axis=-1)
            assert cat.shape == whole.shape, (path, block_seconds)
            if cfg.sample_rate is None:
                np.testing.assert_array_equal(cat, whole)
            else:
                np.testing.assert_allclose(cat, whole, rtol=0, atol=BLOCK_ATOL, err_msg=str(path))


def test_iter_blocks_memory_is_bounded(tmp_path):
    """A 2-minute file read in 5 s blocks never holds more than a few blocks of audio."""
    sr = 44100
    rng = np.random.default_rng(0)
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16") as fh:
        for _ in range(12):
            fh.write((0.1 * rng.standard_normal((10 * sr, 2))).astype(np.float32))
    whole_bytes = 120 * sr * 2 * 4  # the whole file decoded as float32
    tracemalloc.start()
    try:
        n = 0
        for _, y in A.iter_blocks(path, block_seconds=5.0):
            n += y.shape[-1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == math.ceil(120 * sr * 22050 / sr)
    assert peak < whole_bytes / 5, (peak, whole_bytes)


# ---------------------------------------------------------------------------------------------
# Segmentation policy


def _bounds(seconds_total, sr=100, **kw):
    return [(s.start_s, s.duration_s) for s in A.segment_bounds(int(round(seconds_total * sr)), sr,
                                                               config=SegmentConfig(**kw))]


def test_segments_exact_multiple():
    assert _bounds(10, seconds=2) == [(0, 2), (2, 2), (4, 2), (6, 2), (8, 2)]


def test_segments_last_piece_above_and_below_threshold():
    # 1.5 s left of 2 s (75 % >= 50 %): kept, padded, true duration recorded.
    assert _bounds(5.5, seconds=2) == [(0, 2), (2, 2), (4, 1.5)]
    # 0.5 s left (25 %): dropped.
    assert _bounds(4.5, seconds=2) == [(0, 2), (2, 2)]
    # Exactly at the threshold: kept.
    assert _bounds(5.0, seconds=2) == [(0, 2), (2, 2), (4, 1.0)]
    # "drop" drops any short last piece; the threshold can be moved.
    assert _bounds(5.5, seconds=2, last="drop") == [(0, 2), (2, 2)]
    assert _bounds(4.5, seconds=2, min_last_fraction=0.0) == [(0, 2), (2, 2), (4, 0.5)]
    assert _bounds(5.5, seconds=2, min_last_fraction=1.0) == [(0, 2), (2, 2)]


def test_segments_shorter_than_one_segment():
    assert _bounds(0.3, seconds=2) == [(0, 0.3)]  # padded, whatever min_last_fraction says
    assert _bounds(0.3, seconds=2, min_last_fraction=1.0) == [(0, 0.3)]
    assert _bounds(0.3, seconds=2, last="drop") == []
    assert _bounds(0, seconds=2) == []


def test_segments_overlap_and_gaps():
    # hop 1 s, length 2 s: full segments start every second while they fit; then the tail.
    assert _bounds(5.5, seconds=2, hop_seconds=1) == [(0, 2), (1, 2), (2, 2), (3, 2), (4, 1.5)]
    # hop 1.5 s: the tail from 4.5 s is 0.8 s (40 % < 50 %): dropped; 1.3 s (65 %): kept.
    assert _bounds(5.3, seconds=2, hop_seconds=1.5) == [(0, 2), (1.5, 2), (3, 2)]
    assert _bounds(5.8, seconds=2, hop_seconds=1.5) == [(0, 2), (1.5, 2), (3, 2), (4.5, 1.3)]
    # hop longer than the segment: gaps between segments.
    assert _bounds(5, seconds=1, hop_seconds=2) == [(0, 1), (2, 1), (4, 1)]
    segs = A.segment_bounds(1000, 100, config=SegmentConfig(seconds=2, hop_seconds=1))
    assert [s.index for s in segs] == list(range(len(segs)))


def test_segment_audio_pads_with_zeros():
    sr = 50
    y = np.arange(1, 276, dtype=np.float32)  # 5.5 s
    segs, data = A.segment_audio(y, sr, config=SegmentConfig(seconds=2))
    assert data.shape == (3, 100) and data.dtype == np.float32
    np.testing.assert_array_equal(data[1], y[100:200])
    np.testing.assert_array_equal(data[2, :75], y[200:])
    assert not data[2, 75:].any()
    assert segs[2].duration_s == 1.5
    stereo = np.stack([y, -y])
    _, d2 = A.segment_audio(stereo, sr, config=SegmentConfig(seconds=2, hop_seconds=0.5))
    assert d2.shape == (9, 2, 100)  # 8 full (starts 0..175 samples) + the 75-sample tail
    np.testing.assert_array_equal(d2[3, 1, :], -y[75:175])


SEG_CONFIGS = [
    SegmentConfig(seconds=2.0),
    SegmentConfig(seconds=1.5, hop_seconds=0.6),
    SegmentConfig(seconds=3.0, hop_seconds=4.0, last="drop"),
    SegmentConfig(seconds=30.0),  # longer than every sample: one padded segment
]


@pytest.mark.parametrize("seg_index", range(len(SEG_CONFIGS)))
def test_iter_segments_equals_segment_audio(sample_files, seg_index):
    seg_cfg = SEG_CONFIGS[seg_index]
    for path, cfg in zip(sample_files, [AudioConfig(), AudioConfig(sample_rate=None, mono=False)] * 99):
        y, sr = A.load(path, config=cfg)
        segs, data = A.segment_audio(y, sr, config=seg_cfg)
        got = list(A.iter_segments(path, audio=cfg, segment=seg_cfg, block_seconds=0.9))
        assert [s for s, _ in got] == segs, path
        for (_, a), b in zip(got, data):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=0, atol=BLOCK_ATOL)


# ---------------------------------------------------------------------------------------------
# The samples are reproducible from scripts/make_samples.py


def test_samples_regenerate_identically(samples_dir, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_samples", samples_dir.parent / "scripts" / "make_samples.py")
    ms = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = ms  # dataclasses look their module up
    try:
        spec.loader.exec_module(ms)
    finally:
        del sys.modules["make_samples"]
    committed = sorted(p.relative_to(samples_dir) for p in samples_dir.rglob("*") if p.suffix != ".md" and p.is_file())
    assert committed == sorted(Path(c.label) / f"{c.name}.{c.fmt}" for c in ms.CLIPS)
    # The quickest clip of each format (all twelve take many seconds of synthesis).
    quick = {"noise_rain", "bells_pentatonic", "drums_funk_96", "bells_chords"}
    chosen = [c for c in ms.CLIPS if c.name in quick]
    assert {c.fmt for c in chosen} == {"wav", "flac", "ogg", "mp3"}
    for clip in chosen:
        new = ms.write_clip(clip, tmp_path)
        old = samples_dir / clip.label / new.name
        a, sr_a = sf.read(old, dtype="float32")
        b, sr_b = sf.read(new, dtype="float32")
        assert sr_a == sr_b and a.shape == b.shape
        if clip.fmt in ("wav", "flac"):
            assert new.read_bytes() == old.read_bytes(), clip.name
        else:
            # Lossy encoders may change between library versions; the audio must not.
            err = np.sum((a - b) ** 2) / np.sum(a ** 2)
            assert err < 1e-3, (clip.name, err)


def test_mp3_with_large_id3_tag(sample_files, tmp_path):
    """Real music files carry ID3v2 tags with cover art before the first MPEG frame."""
    src = next(p for p in sample_files if p.suffix == ".mp3")
    size = 300_000
    frame = b"APIC" + (size - 10).to_bytes(4, "big") + b"\0\0" + bytes(size - 10)
    n = len(frame)
    synchsafe = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(b"ID3\x03\x00\x00" + synchsafe + frame + src.read_bytes())
    cfg = AudioConfig(sample_rate=None, mono=False)
    ref, _ = A.load(src, config=cfg)
    y, _ = A.load(tagged, config=cfg)
    np.testing.assert_array_equal(y, ref)
    cat = np.concatenate([b for _, b in A.iter_blocks(tagged, config=cfg, block_seconds=0.5)], axis=-1)
    np.testing.assert_array_equal(cat, ref)
