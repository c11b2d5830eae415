"""`genaudio encode`: one encoder, a sweep, and bad input, through the real CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import soundfile as sf
from click.testing import CliRunner

from genaudio.cli import main
from genaudio.encoders import load_encoder, read_codes


def _run(*args):
    """`genaudio encode ARGS` with Griffin-Lim: the default learned decoder (a vocoder training) is
    tested in tests/encoders/test_vocoder.py."""
    return CliRunner().invoke(main, ["encode", *map(str, args), "--decoder", "griffinlim", "-q"],
                              catch_exceptions=False)


def test_encode_a_features_store(tmp_path, features_store):
    out = tmp_path / "enc"
    r = _run(features_store, "--encoder", "pca", "--dim", "8", "--precision", "uint8", "--holdout", "0.34",
             "--wav-pairs", "1", "--out", out)
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "encoded" and man["dim"] == 8 and man["bits_per_value"] == 8
    assert man["bitrate"] == 22050 / 256 * 8 * 8 and man["source"]["kind"] == "features"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["compression_ratio"] == 64.0 and metrics["split"]["test_files"] == 1
    assert 0 < metrics["sc"] < 1 and metrics["lsd_db"] > 0
    data = read_codes(out)
    assert set(data.ids.split) == {"train", "test"}
    assert data.array().shape[1:] == (1 + 2 * 22050 // 256, 8)
    wavs = sorted(p.name for p in (out / "audio").glob("*.wav"))
    assert len(wavs) == 2 and any(w.endswith("_original.wav") for w in wavs)
    y, sr = sf.read(out / "audio" / wavs[0])
    assert sr == 22050 and np.abs(y).max() > 0.01
    assert load_encoder(out).dim == 8
    # an existing output is never overwritten without --overwrite
    before = (out / "manifest.json").read_text()
    r = CliRunner().invoke(main, ["encode", str(features_store), "--out", str(out), "--dim", "4", "-q"])
    assert r.exit_code == 2 and "not empty" in r.output and "Traceback" not in r.output
    assert (out / "manifest.json").read_text() == before


def test_encode_audio_folder_no_core_and_sweep(tmp_path, features_store):
    audio = features_store.parent / "audio"
    out = tmp_path / "feat_only"
    r = _run(audio, "--encoder", "pca", "--dim", "4", "--core", "none", "--groups", "mfcc", "--out", out,
             "--segment-seconds", "2", "--n-mels", "64")
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "no audio decoder" in metrics["note"] and metrics["frame_rmse"] > 0
    assert not (out / "audio").exists()

    rd = tmp_path / "rd"
    r = _run(audio, "--sweep", "dims=4,8", "--encoders", "mel,pca,mulaw", "--segment-seconds", "2",
             "--n-mels", "64", "--out", rd)
    assert r.exit_code == 0, r.output
    df = pd.read_csv(rd / "rate_distortion.csv")
    assert set(df.label) == {"mel-f16", "pca-log_mel-f16", "mulaw-u8"}
    assert df.lsd_db.notna().all() and (df.compression_ratio > 0).all()
    pca = df[df.encoder == "pca"].sort_values("dim")
    assert pca.compression_ratio.iloc[0] == 2 * pca.compression_ratio.iloc[1]
    assert (rd / "rate_distortion.png").stat().st_size > 10_000
    summary = json.loads((rd / "rate_distortion.json").read_text())
    assert "pca-log_mel-f16" in summary["per_encoder"]


def test_bad_input_is_one_clear_line(tmp_path, features_store):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, msg in [
        ([empty], "holds no files"),
        ([features_store, "--dim", "9999"], "larger than the input frame size"),
        ([features_store, "--sweep", "dimz=4"], "unknown key"),
        ([features_store, "--encoder", "mel", "--core", "log_stft"], "mel uses"),
    ]:
        out = tmp_path / "o"
        r = CliRunner().invoke(main, ["encode", *map(str, args), "--decoder", "griffinlim", "--out", str(out), "-q"])
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.output and "Traceback" not in r.output, r.output
        assert not out.exists() or not any(out.iterdir())
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    r = CliRunner().invoke(main, ["encode", str(features_store), "--out", str(junk), "--overwrite", "-q"])
    assert r.exit_code == 2 and "not overwriting" in r.output
    assert (junk / "notes.txt").read_text() == "mine"


def test_help_states_encoder_config_defaults():
    """The decoder options default to None (EncoderConfig decides); their help says its values."""
    import click

    from genaudio.encoders import EncoderConfig

    command = main.get_command(click.Context(main), "encode")
    helps = {p.name: p.help for p in command.params}
    defaults = EncoderConfig()
    for name in ("decoder", "decoder_epochs", "decoder_phase", "griffin_lim_iters"):
        assert helps[name].endswith(f"[default: {getattr(defaults, name)}]"), name
