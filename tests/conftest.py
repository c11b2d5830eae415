"""Shared fixtures. Tests use real Ray, librosa, torch and Parquet; nothing is mocked."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"

os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    assert SAMPLES.is_dir(), "samples/ is missing: run `make samples`"
    return SAMPLES


@pytest.fixture(scope="session")
def sample_files(samples_dir) -> list[Path]:
    exts = {".wav", ".flac", ".ogg", ".mp3"}
    files = sorted(p for p in samples_dir.rglob("*") if p.suffix.lower() in exts)
    assert files, "samples/ holds no audio"
    return files


def start_local_ray(**resources) -> None:
    """A new embedded Ray (``genaudio.infra.connect_ray("local", ...)``: retried when the raylet
    misses Ray's start-up window), never a `ray start` cluster that happens to run on the machine.
    A Ray this process started before is shut down first, so ``resources`` always apply.
    """
    import ray

    from genaudio.infra import connect_ray

    if ray.is_initialized():
        ray.shutdown()
    connect_ray("local", **resources)


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray with 2 CPUs, shut down at the end of the module.

    Module scope (not session) so that tests that start their own ``ray.cluster_utils.Cluster``
    can run in other modules.
    """
    import ray

    start_local_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def six_sample_files(sample_files) -> list[Path]:
    """One file of each of five labels and one more: the small corpus of the slow end-to-end tests."""
    picks = []
    for folder in ("piano", "strings", "bells", "drums", "noise"):
        picks += [p for p in sample_files if p.parent.name == folder][:1]
    return picks + [p for p in sample_files if p not in picks][:1]


# the session's `genaudio pipeline` run: the demo's configuration, smaller (six files in 2-s
# segments, a light analysis, two tiny Griffin-Lim trials): it checks the wiring, not the search
SMALL_PIPELINE = {
    "extract": {"segment": {"seconds": 2.0}},
    # the learned default decoder trains a vocoder: tests/encoders/test_vocoder.py
    "encode": {"kind": "pca", "dim": 16, "decoder": "griffinlim"},
    "analyze": {"permutation_repeats": 1, "folds": 2, "embedding": "pca"},
    "search": {"trials": 2, "epochs": 1, "judge_clips": 5,
               "space": {"encoder": {"kind": ["pca"], "dim": [8], "griffin_lim_iters": 16, "decoder": "griffinlim"},
                         "model": {"family": ["lstm"]},
                         "lstm": {"layers": [1], "hidden": [16], "context": [8]}}},
    "review": {"top": 2, "clips": 1, "seconds": 2.0},
}


def small_pipeline_config() -> dict:
    """configs/demo.yaml with the sections of SMALL_PIPELINE replaced."""
    import yaml

    return {**yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()), **SMALL_PIPELINE}


@pytest.fixture(scope="session")
def small_pipeline(tmp_path_factory, six_sample_files) -> Path:
    """A finished `genaudio pipeline` RUN of the six sample files (:func:`small_pipeline_config`),
    made once per session: tests/test_pipeline.py checks it, and its features store is
    `small_store`, which the analysis, search and review tests read."""
    import yaml

    root = tmp_path_factory.mktemp("small_pipeline")
    listing = root / "files.txt"
    listing.write_text("\n".join(str(p) for p in six_sample_files) + "\n")
    (root / "pipeline.yaml").write_text(yaml.safe_dump(small_pipeline_config()))
    for _ in range(3):   # stages resume; a retry only covers Ray failing to start on a saturated machine
        proc = subprocess.run([sys.executable, "-m", "genaudio", "pipeline", str(listing), "--out", str(root / "run"),
                               "--config", str(root / "pipeline.yaml"), "--num-cpus", "2"],
                              cwd=ROOT, capture_output=True, text=True, timeout=1500)
        if proc.returncode == 0 or "timed out during startup" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    (root / "stdout.txt").write_text(proc.stdout)
    return root / "run"


@pytest.fixture(scope="session")
def small_store(small_pipeline) -> Path:
    """Features store of the six sample files in 2-s segments (frame matrices included): the
    extract stage of the session's pipeline run (`genaudio extract` inside `genaudio pipeline`)."""
    return small_pipeline / "features"


# tiny models, a small judge (5 clips of the 2-s segments, 16 Griffin-Lim iterations), two families,
# one optional feature group, Griffin-Lim decoders (the session's `small_search` trains learned
# ones): the search configuration of every real search in the tests
TINY_SEARCH = """\
trials: {trials}
epochs: {epochs}
cpus_per_trial: 1
max_failures: 1
judge_clips: 5
decoder_minutes: 0.5
space:
  features: {{optional: [tonal]}}
  encoder: {{kind: [pca], dim: 8, griffin_lim_iters: 16, {decoder}}}
  model: {{family: [lstm, gan]}}
  lstm: {{layers: 1, hidden: [16, 32], context: 8}}
  gan: {{family: [conv], latent: 8, loss: ns, channels: 16, patch: 16}}
  train: {{lr: {{low: 1.0e-3, high: 1.0e-2, log: true}}, batch_size: 8, steps_per_epoch: 3}}
"""
GRIFFIN_LIM = "decoder: griffinlim"
TINY_LEARNED_DECODER = "decoder: learned, decoder_epochs: 1"


@pytest.fixture(scope="session")
def small_search(tmp_path_factory, small_store) -> Path:
    """A finished real search RUN of `small_store` made once per session with `genaudio search`:
    5 trials of 3 epochs (ASHA stops some at epoch 1), each encoder with a tiny learned decoder
    (50 steps on 15 training segments). The search and review tests read it."""
    root = tmp_path_factory.mktemp("small_search")
    (root / "tiny.yaml").write_text(TINY_SEARCH.format(trials=5, epochs=3, decoder=TINY_LEARNED_DECODER))
    proc = subprocess.run([sys.executable, "-m", "genaudio", "search", str(small_store), "--out", str(root / "run"),
                           "--config", str(root / "tiny.yaml"), "--num-cpus", "2", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"
