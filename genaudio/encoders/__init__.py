"""Audio encoders: compact training representations with a decoder back to sound.

One interface (:class:`Encoder`) for all kinds:

* ``mel``: the log-mel spectrogram with Griffin-Lim inversion (the fixed baseline);
* ``pca``: PCA on (stacks of) log-mel or log-STFT frames, optionally whitened; fits in seconds;
* ``autoencoder``: a torch 1-D convolutional autoencoder over frames with a spectral loss;
* ``mulaw``: 8-bit mu-law waveform coding, the near-lossless reference.

>>> from genaudio.encoders import make_encoder, load_encoder
>>> enc = make_encoder("pca", dim=16, core="log_stft", precision="uint8").fit(train_waveforms)
>>> codes = enc.encode(y)            # (time, 16) float32, exactly what the store keeps
>>> y_hat = enc.to_audio(codes)      # (samples,) at enc.sample_rate
>>> enc.save("enc/"); enc = load_encoder("enc/")
>>> enc.fit_decoder(train_waveforms)  # a learned decoder (vocoder, genaudio.encoders.vocoder) instead
>>> enc.decoder_name                  # of Griffin-Lim; "learned" (saved with the encoder)

Encoded stores (``genaudio encode`` output) are written by :func:`write_codes` and read by
:func:`read_codes`; :func:`encode_store` encodes a features store in memory.
"""
from genaudio.encoders.base import (KINDS, PRECISIONS, Encoder, EncoderConfig, add_code_noise, encoder_class,
                                    load_encoder, make_encoder)
from genaudio.encoders import mel as _mel  # noqa: F401  (registers the kind)
from genaudio.encoders import pca as _pca  # noqa: F401
from genaudio.encoders import mulaw as _mulaw  # noqa: F401

try:  # torch is a hard dependency, but keep the light encoders importable without it
    from genaudio.encoders import autoencoder as _autoencoder  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["KINDS", "PRECISIONS", "Encoder", "EncoderConfig", "add_code_noise", "encoder_class", "load_encoder",
           "make_encoder"]

from genaudio.encoders.store import (CodesData, config_for_store, encode_store, fit_store, load_inputs,  # noqa: E402
                                     read_codes, resolve_groups, split_by_file, write_codes)

__all__ += ["CodesData", "config_for_store", "encode_store", "fit_store", "load_inputs", "read_codes",
            "resolve_groups", "split_by_file", "write_codes"]
