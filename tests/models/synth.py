"""Synthetic code sequences and a small real encoded store for the model tests and benchmark."""
from __future__ import annotations

import numpy as np
import pandas as pd

from genaudio.models.data import SequenceData


def periodic_codes(*, n_files: int = 6, per_file: int = 3, frames: int = 60, dim: int = 4, period: int = 8,
                   noise: float = 0.05, seed: int = 0) -> SequenceData:
    """Sinusoidal codes (each dim a phase-shifted sine of ``period`` frames) plus a little noise."""
    rng = np.random.default_rng(seed)
    codes, fids = [], []
    for f in range(n_files):
        for _ in range(per_file):
            t = np.arange(frames) + rng.integers(0, period)
            c = np.stack([np.sin(2 * np.pi * t / period + k) for k in range(dim)], 1)
            codes.append(c + noise * rng.standard_normal((frames, dim)))
            fids.append(f"file{f}")
    return SequenceData(codes, np.array(fids), code_rate_hz=20.0)


def build_encoded_store(out, files, *, sr: int = 16000, seg: float = 1.0, core: str = "log_stft",
                        groups: tuple = (), dim: int = 8):
    """A real encoded store (PCA on log-STFT frames, Griffin-Lim decoder) of 1-s segments of the
    sample clips, written with the encoders' own API; the encoder's train/test split is by file."""
    from genaudio.audio import load
    from genaudio.config import AudioConfig
    from genaudio.encoders import EncoderConfig, make_encoder
    from genaudio.encoders.store import CodesData, write_codes

    files = list(files)[:8]
    rows, clips = [], []
    for i, path in enumerate(files):
        y, _ = load(path, config=AudioConfig(sample_rate=sr), duration=4.0)
        n = int(seg * sr)
        for s in range(min(4, len(y) // n)):
            clips.append(y[s * n:(s + 1) * n])
            rows.append({"file_id": f"f{i}", "path": str(path), "label": path.parent.name, "segment": s,
                         "start_s": s * seg, "duration_s": seg, "split": "test" if i in (1, 5) else "train"})
    ids = pd.DataFrame(rows)
    enc = make_encoder(config=EncoderConfig(kind="pca", dim=dim, core=core, groups=groups, sample_rate=sr, n_fft=512,
                                            hop_length=256, griffin_lim_iters=8, precision="float32"))
    enc.fit([c for c, r in zip(clips, rows) if r["split"] == "train"])
    data = CodesData([enc.encode(c) for c in clips], ids, enc)
    write_codes(out, data, enc)
    return out
