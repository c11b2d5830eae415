"""The epoch loop, RNG states and exact-resume checkpoints every trainer shares (genaudio.training),
on a real tiny torch regression."""
from __future__ import annotations

import pytest
import torch

from genaudio.errors import EncoderError, ModelError
from genaudio.training import (Stop, check_config, load_state, load_state_dicts, rng_state, run_epochs, save_state,
                               set_rng_state, state_dicts)


class Regression:
    """y = 3x + 1 fitted by SGD; every batch drawn from its own generator."""

    def __init__(self, lr: float):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(1, 1)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.gen = torch.Generator().manual_seed(0)
        self.history = []

    def train_epoch(self, epoch: int) -> dict | None:
        total = 0.0
        for _ in range(5):
            x = torch.randn(16, 1, generator=self.gen) * 10
            loss = torch.nn.functional.mse_loss(self.model(x), 3 * x + 1)
            if not torch.isfinite(loss):
                return None
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += float(loss.detach())
        return {"epoch": epoch + 1, "loss": total / 5}

    def state(self) -> dict:
        return {"epoch": len(self.history), "history": self.history, "rng": rng_state(self.gen),
                **state_dicts(model=self.model, optimizer=self.opt, scheduler=None)}


def test_trains_every_epoch_and_a_nan_stops_before_end_epoch_sees_it():
    good = Regression(lr=1e-3)
    out = run_epochs(good.train_epoch, start=0, stop=6, end_epoch=good.history.append)
    assert (out.status, out.epochs) == ("ok", 6) and out.message == "trained 6 epochs"
    assert good.history[-1]["loss"] < 0.1 * good.history[0]["loss"]

    bad = Regression(lr=10.0)  # diverges: the loss overflows within a few epochs
    out = run_epochs(bad.train_epoch, start=0, stop=50, end_epoch=bad.history.append)
    assert out.status == "nan" and "NaN or infinite" in out.message
    assert out.epochs == len(bad.history) < 50

    def nan_metric(epoch):
        return {"epoch": epoch + 1, "val_loss": float("nan")}
    out = run_epochs(nan_metric, start=0, stop=3)
    assert (out.status, out.epochs) == ("nan", 0) and "val_loss" in out.message


def test_end_epoch_stops_the_run_with_its_status():
    seen = []

    def end_epoch(metrics):
        seen.append(metrics["epoch"])
        if metrics["epoch"] == 2:
            raise Stop("diverged", "too far")

    out = run_epochs(lambda e: {"epoch": e + 1}, start=0, stop=5, end_epoch=end_epoch)
    assert (out.status, out.message, out.epochs, seen) == ("diverged", "too far", 2, [1, 2])
    out = run_epochs(lambda e: {"epoch": e + 1}, start=3, stop=5)   # a resume starts after its epochs
    assert (out.status, out.epochs) == ("ok", 5)


def test_a_checkpoint_resumes_exactly(tmp_path):
    full = Regression(lr=1e-3)
    run_epochs(full.train_epoch, start=0, stop=4, end_epoch=full.history.append)

    first = Regression(lr=1e-3)
    run_epochs(first.train_epoch, start=0, stop=2, end_epoch=first.history.append)
    save_state(tmp_path / "ck.pt", first.state())
    torch.manual_seed(123)                         # the global RNG moves on before the resume

    resumed = Regression(lr=1e-3)
    state = load_state(tmp_path / "ck.pt", error=ModelError)
    load_state_dicts(state, model=resumed.model, optimizer=resumed.opt, scheduler=None)
    set_rng_state(state["rng"], resumed.gen)
    resumed.history = list(state["history"])
    run_epochs(resumed.train_epoch, start=state["epoch"], stop=4, end_epoch=resumed.history.append)
    assert resumed.history == full.history
    assert torch.equal(resumed.model.weight, full.model.weight)


def test_damaged_missing_or_foreign_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(EncoderError, match="no vocoder checkpoint at"):
        load_state(tmp_path / "none.pt", error=EncoderError, what="vocoder checkpoint")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(ModelError, match="unreadable.*delete it"):
        load_state(tmp_path / "cut.pt", error=ModelError)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ModelError, match="not a genaudio checkpoint"):
        load_state(tmp_path / "list.pt", error=ModelError)


def test_only_the_allowed_fields_may_change_across_a_resume():
    saved = {"epochs": 10, "device": "cpu", "channels": 32, "seed": 0}
    check_config(saved, {**saved, "epochs": 20, "device": "cuda"}, may_differ={"epochs", "device"},
                 error=EncoderError, what="ck")
    with pytest.raises(EncoderError, match=r"ck belongs to another configuration \(differs in channels, seed\)"):
        check_config(saved, {**saved, "channels": 16, "seed": 1}, may_differ={"epochs"}, error=EncoderError,
                     what="ck")
