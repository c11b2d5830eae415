"""The search space: declaration, YAML overrides, validation, conditional sampling (no Ray)."""
from __future__ import annotations

import pickle

import optuna
import pytest

from genaudio.errors import ConfigError
from genaudio.search.space import DEFAULT_SPACE, Choice, IntRange, build_space, define_by_run, selected_groups

# {frame feature: catalog group}, as a features store's manifest lists them
FRAMES = {"log_mel": "spectrum", "mfcc": "cepstral", "onset_strength": "rhythm", "spectral_centroid": "spectral",
          "chroma_stft": "tonal", "tonnetz": "tonal", "rms": "waveform"}
GROUPS = ["cepstral", "rhythm", "spectral", "tonal", "waveform"]


def _sample(space, n=40, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    fn = define_by_run(space)
    configs = []
    for _ in range(n):
        t = study.ask()
        fixed = fn(t)
        configs.append({**t.params, **fixed})
        study.tell(t, 0.0)
    return configs


def test_default_space_resolves_optional_groups_from_the_store():
    space = build_space(None, frame_features=FRAMES)
    assert space.core == DEFAULT_SPACE["features"]["core"] == "log_mel"
    assert set(space.optional_groups) == set(GROUPS)
    assert dict(space.group_features)["tonal"] == ("chroma_stft", "tonnetz")
    assert isinstance(space.domain("encoder.dim"), IntRange) and space.domain("encoder.dim").log
    text = space.describe()
    for name in ["features.tonal", "encoder.kind", "encoder.dim", "lstm.hidden", "gan.latent", "train.lr"]:
        assert name in text
    assert "if model.family == gan" in text


def test_conditional_sections_follow_the_family():
    configs = _sample(build_space(None, frame_features=FRAMES))
    fams = {c["model.family"] for c in configs}
    assert fams == {"lstm", "gan"}
    for c in configs:
        lstm = any(k.startswith("lstm.") for k in c)
        gan = any(k.startswith("gan.") for k in c)
        assert (lstm, gan) == ((True, False) if c["model.family"] == "lstm" else (False, True))
        assert 8 <= c["encoder.dim"] <= 64
        assert c["features.core"] == "log_mel"
        assert set(selected_groups(c)) <= set(GROUPS)
    # each optional group is switched on in some trials and off in others
    assert {c["features.tonal"] for c in configs} == {True, False}


def test_the_autoencoders_options_follow_its_kind():
    """autoencoder.* (EncoderConfig's autoencoder section) only in autoencoder trials; the trial's
    encoder config carries it there; a search of an older genaudio (encoder.epochs) still reads."""
    from genaudio.search.trainable import encoder_options

    configs = _sample(build_space({"autoencoder": {"epochs": 7, "hidden": [32, 64]}}, frame_features=FRAMES))
    assert {c["encoder.kind"] for c in configs} == {"pca", "autoencoder"}
    for c in configs:
        auto = c["encoder.kind"] == "autoencoder"
        assert ("autoencoder.epochs" in c, "autoencoder.hidden" in c) == (auto, auto)
        enc = encoder_options(c)
        if auto:
            assert enc["autoencoder"] == {**enc["autoencoder"], "epochs": 7, "hidden": c["autoencoder.hidden"]}
    old = encoder_options({"encoder.kind": "autoencoder", "encoder.dim": 8, "encoder.epochs": 5})
    assert old["autoencoder"]["epochs"] == 5 and "epochs" not in old


def test_yaml_overrides_merge_section_by_section():
    space = build_space({"model": {"family": ["gan"]}, "lstm": None,
                         "gan": {"latent": [16, 32], "loss": "ns"},
                         "features": {"optional": ["tonal"]}},
                        frame_features=FRAMES)
    assert space.families == ("gan",)
    assert space.optional_groups == ("tonal",)
    assert isinstance(space.domain("gan.latent"), Choice)
    configs = _sample(space, n=10)
    assert all(c["gan.loss"] == "ns" and c["gan.latent"] in (16, 32) for c in configs)
    assert all(not any(k.startswith("lstm.") for k in c) for c in configs)
    # the resolved space prints back in the form it is written in
    assert build_space(space.to_dict(), frame_features=FRAMES).to_dict() == space.to_dict()


@pytest.mark.parametrize("override,message", [
    ({"encoder": {"dim": {"low": 64, "high": 8}}}, "above high"),
    ({"train": {"lr": {"low": 0.0, "high": 0.1, "log": True}}}, "log range needs low > 0"),
    ({"model": {"family": ["lstm", "transformer"]}}, "unknown famil"),
    ({"encoder": {"kind": []}}, "at least one value"),
    ({"optimizer": {"lr": 1}}, "unknown section"),
    ({"features": {"optional": ["waveform"]}}, "no frame matrices in DIR"),
    ({"features": {"core": "cqt"}}, "has no frame matrices"),
    ({"encoder": {"dim": {"low": 8, "hihg": 16}}}, "a range is"),
])
def test_invalid_space_is_refused_with_a_clear_message(override, message):
    with pytest.raises(ConfigError, match=message):
        build_space(override, frame_features={k: v for k, v in FRAMES.items() if v != "waveform"})


def test_unknown_encoder_kind_is_refused():
    with pytest.raises(ConfigError, match="unknown kind"):
        build_space({"encoder": {"kind": ["pca", "vqvae"]}}, frame_features=FRAMES,
                    encoder_kinds=["pca", "mel", "autoencoder"])


def test_define_by_run_pickles_for_resume():
    fn = define_by_run(build_space(None, frame_features=FRAMES))
    again = pickle.loads(pickle.dumps(fn))
    assert again.space == fn.space
