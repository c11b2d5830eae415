"""``genaudio features list`` and ``genaudio features show`` through the real CLI entry point."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from genaudio.cli import main
from genaudio.features import CATALOG


def test_list_table_and_json():
    r = CliRunner().invoke(main, ["features", "list"])
    assert r.exit_code == 0, r.output
    for name in CATALOG:
        assert name in r.output
    r = CliRunner().invoke(main, ["features", "list", "--format", "json"])
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert [row["name"] for row in rows] == list(CATALOG)
    mfcc = next(row for row in rows if row["name"] == "mfcc")
    assert mfcc["dims"] == 20 and mfcc["group"] == "cepstral" and mfcc["frame_level"] and mfcc["default"]
    r = CliRunner().invoke(main, ["features", "list", "--format", "json", "--group", "tonal"])
    assert {row["group"] for row in json.loads(r.output)} == {"tonal"}


def test_list_follows_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("features:\n  n_mfcc: 13\n")
    rows = json.loads(CliRunner().invoke(main, ["features", "list", "--format", "json", "--config", str(cfg)]).output)
    assert next(r for r in rows if r["name"] == "mfcc")["dims"] == 13


@pytest.mark.slow  # matplotlib + ten figures: ~15 s of CPU, more on a loaded machine
def test_show_writes_figures_and_summary_csv(samples_dir, tmp_path):
    out = tmp_path / "show"
    f = samples_dir / "piano" / "piano_arpeggio_g.mp3"
    r = CliRunner().invoke(main, ["features", "show", str(f), "--out", str(out), "--duration", "3"])
    assert r.exit_code == 0, r.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    for name in ("waveform", "spectrogram", "mel_spectrogram", "mfcc", "chroma", "ltas", "tempogram",
                 "spectral_shape", "onsets_beats", "tonnetz"):
        assert f"{name}.png" in pngs
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert rows and set(rows[0]) == {"feature", "dim", "stat", "value"}
    by = {(r["feature"], int(r["dim"]), r["stat"]): float(r["value"]) for r in rows}
    assert ("mfcc", 3, "mean") in by and ("tempo", 0, "value") in by
    assert all(np.isfinite(v) for v in by.values())
    assert 30 < by[("tempo", 0, "value")] < 320


def test_show_bad_inputs_one_line_error(tmp_path):
    junk = tmp_path / "notes.wav"
    junk.write_text("this is not audio\n" * 50)
    for args in (["features", "show", str(junk), "--out", str(tmp_path / "o")],
                 ["features", "show", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "o")],
                 ["features", "show", str(junk), "--out", str(tmp_path / "o"), "--features", "mfcc,nope"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code != 0
        assert "Traceback" not in r.output
        err = r.output.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), r.output
