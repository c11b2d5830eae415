"""`genaudio extract --gpus-per-worker`: Ray GPU actors on a node with fake GPU resources.

torch has no CUDA here, so the actors run the torch path on the CPU (device-agnostic code);
what is checked is that Ray schedules GPU actors, that they take the torch path, and that the
store equals the CPU path's within the documented tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import start_local_ray

from genaudio import extract as ex
from genaudio import store
from genaudio.cli import main
from genaudio.errors import ConfigError
from genaudio.features import torch_frames


@pytest.fixture(scope="module")
def ray_one_gpu():
    import ray

    start_local_ray(num_cpus=2, num_gpus=1)  # a fake GPU: a resource, no device behind it
    yield ray
    ray.shutdown()


def test_gpu_actors_are_scheduled_and_equal_the_cpu_path(samples_dir, ray_one_gpu, tmp_path):
    files = [samples_dir / "piano" / "piano_melody_c.wav", samples_dir / "drums" / "drums_rock_120.flac"]
    out = tmp_path / "store"
    r = CliRunner().invoke(main, ["extract", *map(str, files), "--out", str(out), "-q",
                                  "--gpus-per-worker", "0.5"])
    assert r.exit_code == 0, r.output
    m = store.read_manifest(out)
    assert m["compute"]["gpus_per_worker"] == 0.5
    # every group ran in an actor that Ray gave a GPU, on the torch path
    assert m["compute"]["workers"] and all(w.startswith("torch:") and "gpus=-" not in w
                                           for w in m["compute"]["workers"]), m["compute"]
    got = store.read_segments(out).sort_by([("path", "ascending"), ("segment", "ascending")])
    cfg = ex.ExtractConfig()
    for af in ex.discover(files):
        ref, err = ex.extract_file(af, cfg)
        assert err is None
        mine = got.filter(np.array([p == af.path for p in got.column("path").to_pylist()]))
        assert len(mine) == len(ref)
        for name in ref.column_names:
            if name in store.IDENTITY_COLUMNS:
                assert mine.column(name).to_pylist() == ref.column(name).to_pylist()
                continue
            a = np.asarray(mine.column(name).to_pylist(), dtype=np.float64)
            b = np.asarray(ref.column(name).to_pylist(), dtype=np.float64)
            if name.startswith(("spectral_rolloff", "frames_spectral_rolloff")):
                # a bin frequency (see torch_frames.ROLLOFF_BIN_FRACTION): at most one bin apart
                assert np.abs(a - b).max() <= 22050 / 2048 * 1.001, name
                continue
            # summaries of torch features inherit the tolerance; a statistic that is ~0 (the
            # median of a centred MFCC) is compared in absolute terms (features are O(1) or more)
            scale = max(np.abs(b).max(), 1.0)
            if name.endswith(("_std", "_skew", "_kurtosis", "_delta_mean", "_delta_std")):
                # higher moments of a near-constant row (a tempogram lag with almost no energy)
                # are ill-conditioned: a difference at the tolerance can move its skew by O(1)
                continue
            assert np.abs(a - b).max() <= 10 * torch_frames.TOLERANCE * scale, name


def test_gpus_per_worker_without_gpus_is_a_one_line_error(samples_dir, tmp_path):
    import ray

    start_local_ray(num_cpus=1)
    try:
        with pytest.raises(ConfigError, match="has 0 GPU"):
            ex.run_extract([samples_dir / "piano" / "piano_melody_c.wav"], tmp_path / "s",
                           gpus_per_worker=1, progress=False)
    finally:
        ray.shutdown()
