"""`genaudio pipeline` end to end on samples/, its rerun, and the one-file configuration."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from genaudio.cli import main
from genaudio.errors import ConfigError
from genaudio.config import load
from genaudio.pipeline import PipelineConfig, defaults_yaml, run_pipeline, to_sections


def load_pipeline_config(data):
    return load(PipelineConfig, data)

ROOT = Path(__file__).resolve().parents[1]


def test_printed_defaults_are_the_defaults():
    data = yaml.safe_load(defaults_yaml())
    assert set(data) == {"extract", "analyze", "encode", "search", "review"}
    assert load_pipeline_config(data) == PipelineConfig()
    # spectral encoders get a learned decoder by default (a magnitude vocoder, Griffin-Lim's phase)
    assert data["encode"]["decoder"] == "learned" and data["encode"]["decoder_phase"] == "griffinlim"


def test_print_defaults_cli_has_comments():
    res = CliRunner().invoke(main, ["config", "--print-defaults"])
    assert res.exit_code == 0 and not res.stderr
    out = res.stdout
    assert "# Number of trials (configurations) to run." in out
    assert "segment:" in out and "seconds: 5.0" in out


def test_bad_config_sections_and_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown option.*extrac"):
        load_pipeline_config({"extrac": {}})
    with pytest.raises(ConfigError, match="trails"):
        load_pipeline_config({"search": {"trails": 3}})
    res = CliRunner().invoke(main, ["config", "--check", "/nonexistent.yaml"])
    assert res.exit_code == 2 and "not found" in res.stderr and "Traceback" not in res.output


def test_demo_config_is_valid():
    cfg = load_pipeline_config(yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()))
    assert cfg.search.trials <= 8 and cfg.search.epochs <= 3
    assert to_sections(cfg)["review"].top >= 1


@pytest.mark.slow
def test_pipeline_end_to_end_then_rerun_skips(tmp_path, six_sample_files):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    # smaller than the demo (six files in 2-s segments, a light analysis, two tiny trials): this
    # checks the wiring, not the search
    cfg = load_pipeline_config({**yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()),
                                "extract": {"segment": {"seconds": 2.0}},
                                # the learned default decoder trains a vocoder: tests/encoders/test_vocoder.py
                                "encode": {"kind": "pca", "dim": 16, "decoder": "griffinlim"},
                                "analyze": {"permutation_repeats": 1, "folds": 2, "embedding": "pca"},
                                "search": {"trials": 2, "epochs": 1, "judge_clips": 5,
                                           "space": {"encoder": {"kind": ["pca"], "dim": [8], "griffin_lim_iters": 16,
                                                                 "decoder": "griffinlim"},
                                                     "model": {"family": ["lstm"]},
                                                     "lstm": {"layers": [1], "hidden": [16], "context": [8]}}},
                                "review": {"top": 2, "clips": 1, "seconds": 2.0}})
    run = tmp_path / "run"
    logs: list[str] = []
    try:
        first = run_pipeline(six_sample_files, run, cfg, num_cpus=2, log=logs.append)
        assert [r.name for r in first] == ["extract", "analyze", "encode", "search", "review"]
        assert all(r.status == "done" for r in first)
        manifest = json.loads((run / "features" / "manifest.json").read_text())
        assert manifest["counts"]["files_ok"] == 6
        assert (run / "analysis" / "report.html").is_file()
        assert (run / "analysis" / "subset.yaml").is_file()
        assert (run / "encoded" / "manifest.json").is_file()
        results = pq.read_table(run / "search" / "results.parquet").to_pandas()
        assert len(results) == 2
        assert (run / "search" / "best.yaml").is_file()
        assert (run / "review" / "report.html").is_file()

        again = run_pipeline(six_sample_files, run, cfg, num_cpus=2, log=logs.append)
        status = {r.name: r.status for r in again}
        assert status["analyze"] == status["encode"] == status["search"] == "skipped"
        assert pq.read_table(run / "search" / "results.parquet").num_rows == 2
    finally:
        ray.shutdown()
