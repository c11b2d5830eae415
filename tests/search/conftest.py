"""A small real features store of samples/ (made once per session with `genaudio extract`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_local_ray

ROOT = Path(__file__).resolve().parents[2]

# tiny models, two epochs, a small judge (5 clips of the 2-s segments): what the search tests run
TINY = """\
trials: {trials}
epochs: {epochs}
cpus_per_trial: 1
max_failures: 1
judge_clips: 5
space:
  features: {{optional: [tonal]}}
  encoder: {{kind: [pca], dim: 8}}
  lstm: {{layers: 1, hidden: [16, 32], context: 8}}
  gan: {{family: [conv], latent: 8, loss: ns, channels: 16, patch: 16}}
  train: {{lr: {{low: 1.0e-3, high: 1.0e-2, log: true}}, batch_size: 8, steps_per_epoch: 3}}
"""


@pytest.fixture(scope="module")
def ray_gpus():
    """A real local Ray with 4 fake GPUs (GPU resources without devices) and 16 CPU slots."""
    import ray

    start_local_ray(num_cpus=16, num_gpus=4)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def search_store(tmp_path_factory, sample_files) -> Path:
    """Features store of 6 sample files in 2 s segments (frame matrices included)."""
    root = tmp_path_factory.mktemp("search_store")
    picks = []
    for folder in ("piano", "strings", "bells", "drums", "noise"):
        picks += [p for p in sample_files if p.parent.name == folder][:1]
    picks += [p for p in sample_files if p not in picks][:1]
    listing = root / "files.txt"
    listing.write_text("\n".join(str(p) for p in picks) + "\n")
    out = root / "features"
    for _ in range(3):   # extract resumes; a retry only covers Ray failing to start on a saturated machine
        proc = subprocess.run([sys.executable, "-m", "genaudio", "extract", str(listing), "--out", str(out),
                               "--segment-seconds", "2", "--num-cpus", "2", "-q"],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
        if proc.returncode == 0 or "timed out during startup" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture()
def tiny_config(tmp_path):
    def make(trials=3, epochs=2) -> Path:
        p = tmp_path / f"tiny_{trials}_{epochs}.yaml"
        p.write_text(TINY.format(trials=trials, epochs=epochs))
        return p
    return make
