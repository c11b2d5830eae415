"""The search tests' tiny search configuration and a Ray with fake GPUs (the features store they
search, the configuration's template and a finished search are the session's `small_store`,
`TINY_SEARCH` and `small_search`, tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GRIFFIN_LIM, TINY_SEARCH, start_local_ray


FAKE_GPUS = 2


@pytest.fixture(scope="module")
def ray_gpus():
    """A real local Ray with FAKE_GPUS fake GPUs (GPU resources without devices) and 16 CPU slots."""
    import ray

    start_local_ray(num_cpus=16, num_gpus=FAKE_GPUS)
    yield ray
    ray.shutdown()


@pytest.fixture()
def tiny_config(tmp_path):
    def make(trials=3, epochs=2) -> Path:
        p = tmp_path / f"tiny_{trials}_{epochs}.yaml"
        p.write_text(TINY_SEARCH.format(trials=trials, epochs=epochs, decoder=GRIFFIN_LIM))
        return p
    return make
