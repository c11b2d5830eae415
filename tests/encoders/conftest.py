"""Fixtures of the encoder tests: short synthetic clips, and a real features store built with the
extract stage's own per-file function (no Ray needed for a store of three files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 22050


def tone(freq: float = 440.0, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    """A harmonic tone (fundamental + 2 partials) with a short fade in/out."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(a * np.sin(2 * np.pi * freq * k * t) for k, a in ((1, 1.0), (2, 0.4), (3, 0.2)))
    env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    return (amp * env * y / 1.6).astype(np.float32)


def melody(seed: int, seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    """A few random notes plus a noise burst: a small stand-in for music."""
    rng = np.random.default_rng(seed)
    n_notes = 4
    y = np.concatenate([tone(float(rng.choice([220, 262, 330, 392, 440, 523])), seconds / n_notes, sr)
                        for _ in range(n_notes)])
    y[: sr // 20] += 0.1 * rng.standard_normal(sr // 20).astype(np.float32)
    return y.astype(np.float32)


@pytest.fixture(scope="session")
def clips() -> list[np.ndarray]:
    return [melody(s) for s in range(4)]


@pytest.fixture(scope="session")
def features_store(tmp_path_factory) -> Path:
    """A features store of 3 labelled WAV files (2-s segments, log_mel/stft_db/mfcc/rms frames)."""
    return build_features_store(tmp_path_factory.mktemp("encstore"))


def build_features_store(root: Path, **feature_options) -> Path:
    """:func:`features_store`'s store under ``root``, extracted with ``feature_options`` (other
    ``FeatureConfig`` fields) as well."""
    from genaudio import features as gf
    from genaudio import store
    from genaudio.config import AudioConfig, FeatureConfig, SegmentConfig
    from genaudio.extract import ExtractConfig, discover, extract_file

    audio = root / "audio"
    for i, label in enumerate(["a", "a", "b"]):
        (audio / label).mkdir(parents=True, exist_ok=True)
        sf.write(audio / label / f"clip{i}.wav", melody(10 + i, seconds=4.5), SR)
    names = ("log_mel", "stft_db", "mfcc", "rms")
    cfg = ExtractConfig(audio=AudioConfig(sample_rate=SR), segment=SegmentConfig(seconds=2.0),
                        features=FeatureConfig(n_fft=1024, hop_length=256, n_mels=64, features=names,
                                               frame_features=names, **feature_options))
    tables = []
    for af in discover([audio]):
        table, err = extract_file(af, cfg)
        assert err is None, err
        tables.append(table)
    import pyarrow as pa

    out = root / "store"
    store.atomic_write_table(out / store.SEGMENTS / "part-0.parquet", pa.concat_tables(tables))
    feats = {n: {"group": gf.CATALOG[n].group, "dims": int(gf.CATALOG[n].dims(cfg.features)), "frame": True}
             for n in names}
    store.atomic_write_json(out / store.MANIFEST, {"kind": "features", "config": cfg.resolved(),
                                                   "features": feats})
    return out
