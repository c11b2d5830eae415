"""A small real search on a features store of samples/: OptunaSearch + ASHA on 2 CPUs, real
encoders and models, every output written; and the checks that fail before any trial starts."""
from __future__ import annotations

import json
import shutil

import optuna
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from genaudio.cli import main
from genaudio.config import from_dict, load
from genaudio.models.config import TrainConfig
from genaudio.search.run import run_search
from genaudio.search.tuner import STUDY_FILE, STUDY_NAME, SearchConfig


@pytest.mark.slow
def test_small_real_search_writes_every_result(ray_local, search_store, tiny_config, tmp_path):
    run = tmp_path / "run"
    cfg = load(SearchConfig, tiny_config(trials=3, epochs=2))
    summary = run_search(search_store, run, cfg, verbose=0)
    assert len(summary.rows) == 3

    table = pq.read_table(run / "results.parquet").to_pandas()
    assert len(table) == 3 and (run / "results.csv").is_file()
    for col in ["rank", "trial_id", "status", "reason", "best_score", "final_score", "epochs", "wall_time_s",
                "cpus", "gpus", "param.model.family", "param.encoder.dim", "param.features.tonal", "param.train.lr"]:
        assert col in table.columns, col
    assert set(table["status"]) <= {"completed", "stopped"}
    assert (table["cpus"] == 1.0).all() and (table["gpus"] == 0.0).all()
    done = table[table["status"] == "completed"]
    assert len(done) >= 1 and (done["epochs"] == 2).all()
    # finished trials carry the comparable score of their last epoch; ranking puts them first
    assert done["final.frechet"].notna().all()
    assert table.sort_values("rank").iloc[0]["status"] == "completed"
    # conditional parameters: an LSTM trial has no GAN parameters and vice versa
    for _, r in table.iterrows():
        fam = r["param.model.family"]
        other = "gan" if fam == "lstm" else "lstm"
        assert all(pd_isna(r[c]) for c in table.columns if c.startswith(f"param.{other}."))

    # encoders are fitted once per (features, kind, dim) and reused: 2 possible encoders, 3 trials
    entries = [p for p in (run / "cache" / "encoders").iterdir() if p.is_dir()]
    assert 1 <= len(entries) <= 2
    assert table["final.encoder_cache_hit"].sum() >= 1
    manifest = json.loads((entries[0] / "manifest.json").read_text())
    assert manifest["kind"] == "encoded" and manifest["dim"] == 8

    best = yaml.safe_load((run / "best.yaml").read_text())
    tc = from_dict(TrainConfig, best)            # what `genaudio train --config` reads
    top = table.sort_values("rank").iloc[0]
    assert tc.model == top["param.model.family"] and tc.lr == pytest.approx(top["param.train.lr"])

    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{run / STUDY_FILE}")
    assert len(study.trials) == 3
    assert {"model.family", "train.lr", "features.tonal"} <= set(study.trials[0].params)


def pd_isna(v) -> bool:
    return v is None or v != v


def test_dir_that_is_not_a_store_fails_before_any_trial(tmp_path):
    res = CliRunner().invoke(main, ["search", str(tmp_path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2
    assert "not a genaudio features store" in res.output
    assert not (tmp_path / "run").exists()


def test_store_without_frame_columns_fails_before_any_trial(search_store, tmp_path):
    store = tmp_path / "summary_only"
    shutil.copytree(search_store, store)
    for part in (store / "segments").glob("*.parquet"):
        t = pq.read_table(part)
        pq.write_table(t.select([c for c in t.column_names if not c.startswith("frames_")]), part)
    res = CliRunner().invoke(main, ["search", str(store), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "no frame-matrix columns" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("space,message", [
    ({"encoder": {"dim": {"low": 0, "high": 8, "log": True}}}, "log range needs low > 0"),
    ({"lstm": {"context": [1, 8]}}, "lstm.context=1"),
    ({"gan": {"loss": ["ns", "hinge"]}}, "gan.loss"),
    ({"features": {"optional": ["pitch"]}}, "no frame matrices in DIR"),
])
def test_invalid_space_fails_before_any_trial(search_store, tmp_path, space, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"space": space}))
    res = CliRunner().invoke(main, ["search", str(search_store), "--out", str(tmp_path / "run"), "--config", str(cfg)])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()


def test_show_space_prints_the_resolved_space(search_store, tiny_config):
    res = CliRunner().invoke(main, ["search", str(search_store), "--show-space", "--config", str(tiny_config())])
    assert res.exit_code == 0, res.output
    assert "features.tonal" in res.output and "if model.family == gan" in res.output
    assert "space:" in res.output and "lstm.hidden" in res.output
