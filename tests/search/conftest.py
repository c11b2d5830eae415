"""The search tests' tiny search configuration and a Ray with fake GPUs (the features store they
search is the session's `small_store`, tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import start_local_ray

# tiny models, two epochs, a small judge (5 clips of the 2-s segments, 16 Griffin-Lim iterations):
# what the search tests run
TINY = """\
trials: {trials}
epochs: {epochs}
cpus_per_trial: 1
max_failures: 1
judge_clips: 5
space:
  features: {{optional: [tonal]}}
  encoder: {{kind: [pca], dim: 8, griffin_lim_iters: 16}}
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


@pytest.fixture()
def tiny_config(tmp_path):
    def make(trials=3, epochs=2) -> Path:
        p = tmp_path / f"tiny_{trials}_{epochs}.yaml"
        p.write_text(TINY.format(trials=trials, epochs=epochs))
        return p
    return make
