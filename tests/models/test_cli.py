"""`genaudio train` and `genaudio generate` on a real encoded store."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from genaudio.cli import main


@pytest.mark.slow
def test_train_then_generate(encoded_store, samples_dir, tmp_path):
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(encoded_store), "--model", "lstm", "--hidden", "16", "--layers", "1",
                                  "--context", "12", "--epochs", "2", "--batch-size", "8",
                                  "--set", "score.n_clips=5", "--set", "lstm.head=mdn", "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert "epoch 1/2" in r.output and "epoch 2/2" in r.output and "score: quality (KID" in r.output
    assert "real vs real" in r.output and "decoder alone" in r.output
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "ok" and len(m["history"]) == 2
    final = m["final"]
    assert final["n_generated"] == 5 and final["n_real"] == 5 and final["quality_se"] > 0 and "val_loss" in final
    for key in ("quality", "reference_quality", "decoder_quality", "frame_comb", "reference_frame_comb"):
        assert np.isfinite(final[key]), key
    assert "frame comb" in r.output
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()

    # a second train into the same folder is refused in one line; --resume continues it
    r = CliRunner().invoke(main, ["train", str(encoded_store), "--model", "lstm", "--out", str(run)])
    assert r.exit_code == 2 and "--resume" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", str(encoded_store), "--config", str(run / "config.yaml"), "--epochs", "3",
                                  "--no-score", "--resume", "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert "epoch 3/3" in r.output and "epoch 1/3" not in r.output

    out = tmp_path / "clips"
    r = CliRunner().invoke(main, ["generate", str(run), "--n", "2", "--seconds", "1.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for i in range(2):
        info = sf.info(out / f"clip_{i:02d}.wav")
        assert info.samplerate == 16000 and info.frames == 24000
        assert (out / f"clip_{i:02d}.png").stat().st_size > 10_000

    # the judge takes the run itself as a candidate: clips generated on the fly, resampled
    r = CliRunner().invoke(main, ["score", str(samples_dir), str(run), "--n", "5", "--seconds", "1.5", "--format", "json"])
    assert r.exit_code == 0, r.output
    cand = json.loads(r.output[r.output.index("{"):])["candidates"][0]
    assert cand["kind"] == "model" and cand["n"] == 5 and np.isfinite(cand["score"]) and cand["score_se"] > 0


def test_bad_input_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["train", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and r.output.startswith("error:") and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", str(tmp_path), "--set", "lstm.hiden=3", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "unknown option" in r.output
    r = CliRunner().invoke(main, ["generate", str(tmp_path), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "no checkpoint" in r.output


@pytest.mark.slow
def test_encoder_without_audio_decoder_is_not_judged(sample_files, tmp_path):
    from .synth import build_encoded_store

    enc = build_encoded_store(tmp_path / "ENC", sample_files, core="none", groups=("mfcc",), dim=4)
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(enc), "--model", "gan", "--patch", "16", "--channels", "16",
                                  "--layers", "2", "--latent", "8", "--epochs", "1", "--batch-size", "8",
                                  "--set", "score.n_clips=5", "--out", str(run)])
    assert r.exit_code == 0, r.output
    # the judge listens: codes that no decoder renders cannot be judged, and the run says so in one line
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert "no audio decoder" in final["score_error"] and "quality" not in final
    assert "score failed" in r.output and "no audio decoder" in r.output
    r = CliRunner().invoke(main, ["generate", str(run), "--n", "1", "--seconds", "2", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "no audio decoder" in r.output
    import numpy as np

    codes = np.load(tmp_path / "c" / "clip_00.npy")
    assert codes.shape[1] == 4 and codes.shape[0] == 125  # 2 s at 62.5 Hz


def test_the_score_line_names_a_buzz_only_when_there_is_one():
    """`train`/`generate --score` print the frame comb beside real music's; only a comb far above
    it (values measured on the development corpus) is called a buzz."""
    from genaudio.models.score import describe

    base = {"quality": 7.87, "quality_se": 1.8, "reference_quality": 0.98, "reference_quality_se": 0.14,
            "n_generated": 16, "seconds": 5.0}
    for comb, real, buzz in ((8.13, 8.65, False), (16.9, 8.65, False), (469.0, 3.5, True), (9.6, None, False),
                             (187.0, None, True)):
        scored = {**base, "frame_comb": comb, **({} if real is None else {"reference_frame_comb": real})}
        line = describe(scored)
        assert f"frame comb {comb:.3g}" in line and ("buzz" in line) == buzz, line
