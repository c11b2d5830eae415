"""Encoders on a real features store; the encoded store's write/read round trip."""
from __future__ import annotations

import numpy as np
import pytest

from genaudio.encoders import (config_for_store, encode_store, fit_store, load_encoder, make_encoder,
                               read_codes, resolve_groups, split_by_file, write_codes)
from genaudio.encoders.store import features_store_of, frame_features_of, load_inputs
from genaudio.errors import EncoderError, StoreError


def test_config_matches_the_store_and_groups_resolve(features_store):
    cfg = config_for_store(features_store, kind="pca", dim=8, groups=("cepstral",))
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels) == (22050, 1024, 256, 64)
    assert cfg.groups == ("mfcc",)
    avail = frame_features_of(features_store)
    assert resolve_groups(["rms", "mfcc"], avail) == ("rms", "mfcc")
    with pytest.raises(EncoderError, match="no frame-level feature or group 'tonal'"):
        resolve_groups(["tonal"], avail)


def test_fit_and_encode_a_store_in_memory(features_store):
    cfg = config_for_store(features_store, kind="pca", dim=8, groups=("mfcc",))
    ids, parts, waves = load_inputs(features_store, cfg)
    assert waves is None, "matching analysis must use the stored frames, not decode audio"
    assert set(parts[0]) == {"log_mel", "mfcc"}
    test = split_by_file(ids["file_id"], holdout=0.34)
    assert 0 < test.sum() < len(ids)
    assert not set(ids.file_id[test]) & set(ids.file_id[~test])  # by file, never by segment
    enc = fit_store(features_store, cfg, file_ids=sorted(set(ids.file_id[~test])))
    data = encode_store(features_store, enc)
    assert len(data) == len(ids) and data.dim == 8
    arr = data.array()
    assert arr.shape == (len(ids), 1 + 2 * 22050 // 256, 8) and arr.dtype == np.float32
    assert list(data.file_ids) == list(ids.file_id)
    # stored frames and audio decoded again give the same codes (one analysis, one definition)
    ids2, parts2, waves2 = load_inputs(features_store, cfg, need_audio=True, max_segments=2)
    assert waves2 is not None and len(waves2) == 2
    row = int(np.flatnonzero((ids.file_id == ids2.file_id[0]) & (ids.segment == ids2.segment[0]))[0])
    np.testing.assert_allclose(enc.encode(parts2[0]), data.codes[row], atol=0.05)


def test_frames_computed_from_audio_follow_the_stores_other_analysis_options(tmp_path):
    """A store extracted with 13 MFCCs: the encoder's own frames (reconstruct, a decoder's
    training) must be those of the store, not the defaults' 20."""
    from .conftest import build_features_store

    store = build_features_store(tmp_path, n_mfcc=13)
    cfg = config_for_store(store, kind="pca", dim=8, groups=("mfcc",))
    assert cfg.feature_options == {"n_mfcc": 13}
    ids, parts, waves = load_inputs(store, cfg)
    assert waves is None and parts[0]["mfcc"].shape[0] == 13
    enc = fit_store(store, cfg)
    _, parts2, waves2 = load_inputs(store, cfg, need_audio=True, max_segments=1)
    np.testing.assert_allclose(enc.input_frames(waves2[0]), enc.input_frames(parts2[0]), atol=1e-4)
    assert enc.reconstruct(waves2[0]).shape == waves2[0].shape
    # an encoder config of the default options does not read that store's frames (they differ)
    assert load_inputs(store, make_encoder("pca", dim=8, groups=("mfcc",), sample_rate=cfg.sample_rate,
                                           n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels).config,
                       max_segments=1)[2] is not None


def test_a_mel_size_the_store_lacks_decodes_audio_again(features_store):
    cfg = config_for_store(features_store, kind="mel", dim=32, n_mels=32)
    ids, parts, waves = load_inputs(features_store, cfg, max_segments=3)
    assert waves is not None and parts[0]["log_mel"].shape[0] == 32


@pytest.mark.parametrize("precision", ["float16", "uint8", "float32"])
def test_encoded_store_round_trip(tmp_path, features_store, precision):
    cfg = config_for_store(features_store, kind="pca", dim=6, precision=precision)
    enc = fit_store(features_store, cfg)
    data = encode_store(features_store, enc)
    out = write_codes(tmp_path / "enc", data, enc, source={"store": str(features_store)})
    back = read_codes(out)
    assert len(back) == len(data)
    for a, b in zip(data.codes, back.codes):
        np.testing.assert_array_equal(a, b)  # encode() already returned stored-precision values
    assert list(back.ids.columns[:6]) == ["file_id", "path", "label", "segment", "start_s", "duration_s"]
    assert back.encoder.config == enc.config and back.encoder_path == out / "encoder"
    import pyarrow.parquet as pq

    stored = pq.read_schema(out / "codes" / "part-00000.parquet").field("codes").type.value_type.value_type
    assert str(stored) == {"float16": "halffloat", "uint8": "uint8", "float32": "float"}[precision]
    y = back.encoder.to_audio(back.codes[0])
    assert y.ndim == 1 and len(y) > 22050
    assert features_store_of(out) == features_store  # the judge's space comes from it


def test_features_store_of_an_encoded_store(tmp_path, features_store):
    enc = fit_store(features_store, config_for_store(features_store, kind="pca", dim=4))
    data = encode_store(features_store, enc)
    legacy = write_codes(tmp_path / "legacy", data, enc, source={"dir": str(features_store)})  # older search caches
    gone = write_codes(tmp_path / "gone", data, enc, source={"store": str(tmp_path / "deleted")})
    audio = write_codes(tmp_path / "audio", data, enc)  # encoded from audio files: no store
    assert features_store_of(legacy) == features_store
    assert features_store_of(gone) is None and features_store_of(audio) is None


def test_reading_what_is_not_an_encoded_store(tmp_path, features_store):
    with pytest.raises(StoreError, match="not an encoded store"):
        read_codes(features_store)
    with pytest.raises(StoreError, match="no such folder"):
        read_codes(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    with pytest.raises(StoreError, match="not a complete encoded store"):
        read_codes(tmp_path / "half")
    with pytest.raises(EncoderError, match="lack"):
        make_encoder("pca", dim=4, n_mels=64).fit([{"mfcc": np.zeros((20, 50))}])
    with pytest.raises(EncoderError, match="not a saved genaudio encoder"):
        load_encoder(features_store)
