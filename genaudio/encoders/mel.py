"""The fixed baseline: the log-mel spectrogram itself as codes, rendered with Griffin-Lim."""
from __future__ import annotations

import numpy as np

from genaudio.encoders.base import Encoder, register
from genaudio.errors import ConfigError, EncoderError


@register("mel")
class MelEncoder(Encoder):
    """Codes are the standardised input frames: ``n_mels`` log-mel bands (+ any extra features).

    Nothing is learned except the standardisation. ``downsample > 1`` averages that many
    consecutive frames into one code frame (decoding repeats it).
    ``make_encoder("mel", dim=40)`` is the log-mel-40 + Griffin-Lim baseline.
    """

    fixed_core = "log_mel"

    @classmethod
    def check_config(cls, config):
        if config.core != "log_mel":
            raise ConfigError(f"the mel encoder's core is log_mel (got core={config.core!r})")

    def _fit(self, zs):
        if self.input_dims != self.dim:
            raise EncoderError(
                f"the mel encoder's dim is its input size: the input frames have {self.input_dims} rows "
                f"({', '.join(f'{b.name}:{b.dims}' for b in self.blocks)}) but dim={self.dim}")

    def _encode(self, z):
        f = self.config.downsample
        d, t = z.shape
        pad = (-t) % f
        if pad:
            z = np.pad(z, ((0, 0), (0, pad)), mode="edge")
        return z.reshape(d, -1, f).mean(axis=2).T.astype(np.float32)

    def _decode(self, codes):
        return np.repeat(codes.T, self.config.downsample, axis=1).astype(np.float32)
