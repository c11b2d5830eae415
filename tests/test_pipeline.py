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

from conftest import small_pipeline_config


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
def test_pipeline_end_to_end_then_rerun_skips(small_pipeline, six_sample_files):
    """The session's `genaudio pipeline` run (tests/conftest.py; its features store is the other
    tests' `small_store`): every stage's output, then a rerun that skips every stage."""
    import ray

    run = small_pipeline
    # the CLI's last lines: "stages: extract done (21 s), analyze done (16 s), ..."
    line = next(ln for ln in (run.parent / "stdout.txt").read_text().splitlines() if ln.startswith("stages: "))
    first = [part.split()[:2] for part in line[len("stages: "):].split(", ")]
    assert first == [[name, "done"] for name in ("extract", "analyze", "encode", "search", "review")], line
    manifest = json.loads((run / "features" / "manifest.json").read_text())
    assert manifest["counts"]["files_ok"] == 6
    assert (run / "analysis" / "report.html").is_file()
    assert (run / "analysis" / "subset.yaml").is_file()
    assert (run / "encoded" / "manifest.json").is_file()
    results = pq.read_table(run / "search" / "results.parquet").to_pandas()
    assert len(results) == 2
    assert (run / "search" / "best.yaml").is_file()
    assert (run / "review" / "report.html").is_file()

    if ray.is_initialized():
        ray.shutdown()
    try:
        again = run_pipeline(six_sample_files, run, load_pipeline_config(small_pipeline_config()), num_cpus=2,
                             log=lambda _: None)
        status = {r.name: r.status for r in again}
        assert status["analyze"] == status["encode"] == status["search"] == "skipped"
        assert pq.read_table(run / "search" / "results.parquet").num_rows == 2
    finally:
        ray.shutdown()


def test_a_search_that_failed_before_its_first_trial_does_not_block_the_stage(small_pipeline, tmp_path):
    """`genaudio search` writes search.json before Ray and its checks run: a search that failed
    there left no experiment, so a rerun with other options starts anew instead of refusing."""
    run = tmp_path / "run"
    (run / "search").mkdir(parents=True)
    (run / "features").symlink_to(small_pipeline / "features", target_is_directory=True)
    (run / "search" / "search.json").write_text(json.dumps({"store": "x", "config": {}}))   # as such a failure leaves it
    (run / "pipeline.json").write_text(json.dumps({"search": {"status": "running", "key": "an earlier key"}}))
    cfg = load_pipeline_config({**small_pipeline_config(), "search": {"space": {"model": {"family": ["transformer"]}}}})
    # the new options are checked (and refused here) as a new search's: the stale folder is no obstacle
    with pytest.raises(ConfigError, match="transformer"):
        run_pipeline([], run, cfg, stages=["search"], log=lambda _: None)
