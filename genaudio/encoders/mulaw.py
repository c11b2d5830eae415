"""8-bit mu-law waveform coding: the near-lossless reference point of the rate-distortion curve."""
from __future__ import annotations

import numpy as np

from genaudio.encoders.base import Encoder, register
from genaudio.encoders.framing import Standardizer
from genaudio.errors import EncoderError


@register("mulaw")
class MuLawEncoder(Encoder):
    """mu-law companding (mu = 255) quantised to 256 levels, 8 bits per sample.

    Codes are the companded samples in [-1, 1], ``dim`` samples per code frame (default layout
    ``(samples / dim, dim)``), so ``code_rate_hz = sample_rate / dim`` and the bitrate is always
    ``8 * sample_rate`` (2x vs 16-bit PCM). ``decode`` gives the linear waveform frames
    ``(dim, time)``; ``to_audio`` flattens them. Nothing is fitted.
    """

    MU = 255
    takes_waveform = True
    fixed_precision = "uint8"
    fixed_core = "waveform"

    @classmethod
    def check_config(cls, config):
        pass  # no frames: the spectral core and feature groups do not apply

    def _read_quantizer(self, arrays, path):
        pass  # 256 fixed levels: nothing was fitted

    @property
    def code_rate_hz(self) -> float:
        return self.config.sample_rate / self.config.dim

    @property
    def has_audio_decoder(self) -> bool:
        return True

    @property
    def input_dims(self) -> int:
        return self.dim

    @property
    def decoder_name(self) -> str:
        return "mulaw"

    @property
    def can_learn_decoder(self) -> bool:
        return False

    def set_decoder(self, decoder):
        if decoder is not None:
            raise EncoderError("the mulaw encoder decodes its waveform exactly: it takes no learned decoder")
        return self

    def fit_decoder(self, waves, **options):
        raise EncoderError("the mulaw encoder decodes its waveform exactly: it takes no learned decoder")

    def fit(self, data=None):
        self.blocks = []
        self.standardizer = Standardizer(np.zeros(0, np.float32), np.zeros(0, np.float32))
        self.fitted = True
        return self

    def _levels(self, codes):
        return np.clip(np.rint((np.asarray(codes, np.float32) + 1.0) * 127.5), 0, 255)

    def quantize(self, codes):
        return self._levels(codes).astype(np.uint8)

    def dequantize(self, stored):
        return (np.asarray(stored, np.float32) / 127.5 - 1.0).astype(np.float32)

    def encode(self, x):
        self._require_fitted()
        y = np.asarray(x, dtype=np.float32)
        if y.ndim != 1:
            raise EncoderError("the mulaw encoder codes waveforms (samples,), not frames")
        if y.size == 0:
            raise EncoderError("empty waveform (0 samples)")
        if not np.all(np.isfinite(y)):
            raise EncoderError("waveform contains NaN or infinity")
        y = np.clip(y, -1.0, 1.0)
        pad = (-len(y)) % self.dim
        y = np.pad(y, (0, pad))
        c = np.sign(y) * np.log1p(self.MU * np.abs(y)) / np.log1p(self.MU)
        return self.dequantize(self.quantize(c)).reshape(-1, self.dim)

    def decode(self, codes):
        self._require_fitted()
        c = np.clip(self._check_codes(codes), -1.0, 1.0)
        y = np.sign(c) * ((1.0 + self.MU) ** np.abs(c) - 1.0) / self.MU
        return y.T.astype(np.float32)

    def to_audio(self, codes=None, *, frames=None, length=None):
        self._require_fitted()
        if (codes is None) == (frames is None):
            raise EncoderError("to_audio needs exactly one of codes or frames=")
        if frames is None:
            frames = self.decode(codes)
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 2 or frames.shape[0] != self.dim:
            raise EncoderError(f"frames have shape {frames.shape}, expected ({self.dim}, time)")
        y = frames.T.reshape(-1)
        if length is not None:
            y = y[:length] if len(y) >= length else np.pad(y, (0, length - len(y)))
        return y

    def split_frames(self, frames):
        return {"waveform": frames}
