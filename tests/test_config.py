"""Config objects: validation a user relies on, stable hashing, YAML round trips."""
from __future__ import annotations

import pytest

from genaudio.config import (AudioConfig, FeatureConfig, SegmentConfig, config_hash, dump_yaml,
                             from_dict, load_yaml, replace, to_dict)
from genaudio.errors import ConfigError, GenaudioError


def test_unknown_key_is_refused_with_the_valid_names():
    with pytest.raises(ConfigError) as e:
        from_dict(FeatureConfig, {"n_mfccs": 13})
    assert "n_mfccs" in str(e.value) and "n_mfcc" in str(e.value)


def test_wrong_types_are_refused():
    with pytest.raises(ConfigError, match="integer"):
        from_dict(FeatureConfig, {"n_fft": "big"})
    with pytest.raises(ConfigError, match="list"):
        from_dict(FeatureConfig, {"features": "mfcc"})
    with pytest.raises(ConfigError, match="true or false"):
        from_dict(AudioConfig, {"mono": "yes"})


def test_values_are_validated():
    with pytest.raises(ConfigError, match="hop_length"):
        FeatureConfig(n_fft=512, hop_length=1024)
    with pytest.raises(ConfigError):
        SegmentConfig(seconds=0)
    with pytest.raises(ConfigError):
        SegmentConfig(last="keep")
    with pytest.raises(ConfigError):
        AudioConfig(sample_rate=10)
    assert issubclass(ConfigError, GenaudioError)


def test_hash_is_stable_and_sensitive():
    a, b = FeatureConfig(), FeatureConfig()
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(replace(a, n_mfcc=13))
    assert config_hash(SegmentConfig(seconds=5)) == config_hash(SegmentConfig(seconds=5.0))


def test_yaml_round_trip(tmp_path):
    cfg = FeatureConfig(n_mels=64, features=("mfcc", "rms"))
    path = tmp_path / "f.yaml"
    path.write_text(dump_yaml(cfg))
    back = from_dict(FeatureConfig, load_yaml(path))
    assert back == cfg and config_hash(back) == config_hash(cfg)
    assert to_dict(back)["features"] == ["mfcc", "rms"]


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(lst)


def test_commented_defaults_parse_back_to_the_defaults():
    import yaml

    from genaudio.config import commented_yaml

    text = commented_yaml({"segment": SegmentConfig(), "features": FeatureConfig()})
    assert "# Segment length in seconds." in text
    data = yaml.safe_load(text)
    assert from_dict(SegmentConfig, data["segment"]) == SegmentConfig()
    assert from_dict(FeatureConfig, data["features"]) == FeatureConfig()
