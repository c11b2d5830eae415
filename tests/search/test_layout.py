"""The search RUN layout: where a trial's model checkpoint is found."""
from __future__ import annotations

from genaudio.models.run import BEST, CHECKPOINTS, LAST
from genaudio.search.layout import TRIAL_MODEL_DIR, trial_checkpoint, tune_checkpoints


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_trials_checkpoint_is_found_where_tune_or_the_trial_left_it(tmp_path):
    trial = tmp_path / "tune" / "search" / "search_trainable_abc_1"
    trial.mkdir(parents=True)
    assert trial_checkpoint(trial) is None
    own = _touch(trial / TRIAL_MODEL_DIR / CHECKPOINTS / BEST)          # the trial's own model run
    assert trial_checkpoint(trial) == own
    _touch(trial / "checkpoint_000000" / LAST)
    newest = _touch(trial / "checkpoint_000001" / LAST)                 # Tune's copies win, newest first
    assert tune_checkpoints(trial)[-1].name == "checkpoint_000001"
    assert trial_checkpoint(trial) == newest
    # the folder Tune recorded, looked up beside the trial when the RUN folder was moved
    moved = tmp_path / "elsewhere" / "search_trainable_abc_1" / "checkpoint_000000"
    assert trial_checkpoint(trial, recorded=moved) == trial / "checkpoint_000000" / LAST
