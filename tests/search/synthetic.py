"""A small *real* training task for exercising the Tuner wiring without audio (test support).

It fits a torch MLP to a fixed nonlinear regression problem; its score is the validation MSE,
so learning rate, width and depth really change the outcome and early epochs predict later ones
(what ASHA relies on). Tests use it to check GPU packing, multi-node placement, failures and
resume independently of the audio stack, and ``benchmarks/search_efficiency.py`` uses it as a
cheap objective. It goes through the same session helpers as the real trainable.

Config keys: ``train.lr``, ``train.batch_size``, ``synth.hidden``, ``synth.layers``,
``synth.fail_epoch`` (raise at that epoch: a trial that crashes), ``epochs``.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray.cloudpickle

from genaudio.search.session import report_epoch

# This module is not installed (it lives in tests/): Ray workers cannot import it, so its
# functions travel to them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class SyntheticSpace:
    """Define-by-run space of the synthetic task: learning rate, batch size, width, depth.

    ``by_number`` maps an Optuna trial number to values that replace the drawn ones (e.g.
    ``{1: {"synth.fail_epoch": 2}}`` makes the second trial crash at epoch 2, ``{2: {"train.lr":
    1e4}}`` makes the third diverge to NaN); ``fixed`` applies to every trial.
    """

    def __init__(self, *, fixed: dict | None = None, by_number: dict | None = None,
                 lr: tuple[float, float] = (1e-4, 1.0)):
        self.fixed = dict(fixed or {})
        self.by_number = {int(k): dict(v) for k, v in (by_number or {}).items()}
        self.lr = lr

    def __call__(self, trial) -> dict:
        trial.suggest_float("train.lr", self.lr[0], self.lr[1], log=True)
        trial.suggest_categorical("train.batch_size", [16, 64, 256])
        trial.suggest_int("synth.hidden", 4, 128, log=True)
        trial.suggest_int("synth.layers", 1, 3)
        return {**self.fixed, **self.by_number.get(trial.number, {})}


def make_data(n: int = 2048, d: int = 8, *, seed: int = 0) -> dict:
    """A regression problem ``y = sin(X w1) . w2 + noise``: (n, d) inputs, (n,) targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w1 = rng.normal(size=(d, 16)).astype(np.float32)
    w2 = rng.normal(size=(16,)).astype(np.float32) / 4
    y = (np.sin(x @ w1) @ w2 + 0.05 * rng.normal(size=n)).astype(np.float32)
    split = int(0.8 * n)
    return {"x_train": x[:split], "y_train": y[:split], "x_val": x[split:], "y_val": y[split:]}


def rendezvous(config: dict) -> None:
    """Wait until ``synth.peers`` trials have started (files in ``synth.rendezvous``), max 120 s.

    Lets a test check how many trials Ray runs at once without timing assumptions: if Ray could
    place fewer trials, the waiting ones time out and report fewer peers (``peers_seen``).
    """
    import os

    folder = config.get("synth.rendezvous")
    if not folder:
        return
    from ray import tune

    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{tune.get_context().get_trial_id()}.{os.getpid()}").touch()
    deadline = time.time() + float(config.get("synth.rendezvous_timeout_s", 120))
    while len(list(Path(folder).iterdir())) < int(config.get("synth.peers", 1)) and time.time() < deadline:
        time.sleep(0.1)


def synthetic_trainable(config: dict, data: dict | None = None) -> None:
    """Tune function trainable: one report (with a checkpoint) per epoch; resumes from checkpoints."""
    import torch
    from ray import tune

    from genaudio.search.session import device

    started_at = time.time()
    torch.set_num_threads(1)
    data = data if data is not None else make_data()
    dev = device()
    epochs = int(config.get("epochs", 5))
    hidden = int(config.get("synth.hidden", 32))
    layers = int(config.get("synth.layers", 2))
    lr = float(config.get("train.lr", 1e-2))
    batch = int(config.get("train.batch_size", 64))
    fail_epoch = config.get("synth.fail_epoch")
    sleep_s = float(config.get("synth.sleep_s", 0.0))

    torch.manual_seed(int(config.get("seed", 0)))
    dims = [data["x_train"].shape[1]] + [hidden] * layers
    mods: list = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    model = torch.nn.Sequential(*mods, torch.nn.Linear(dims[-1], 1)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    rendezvous(config)
    start = 1
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / "state.pt", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = int(state["epoch"]) + 1

    xt, yt = torch.from_numpy(data["x_train"]).to(dev), torch.from_numpy(data["y_train"]).to(dev)
    xv, yv = torch.from_numpy(data["x_val"]).to(dev), torch.from_numpy(data["y_val"]).to(dev)
    gen = torch.Generator().manual_seed(int(config.get("seed", 0)))
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        if fail_epoch is not None and epoch >= int(fail_epoch):
            raise RuntimeError(f"synthetic failure at epoch {epoch}")
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = torch.mean((model(xt[idx]).squeeze(-1) - yt[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        model.eval()
        with torch.no_grad():
            val = float(torch.mean((model(xv).squeeze(-1) - yv) ** 2))
        if sleep_s:
            time.sleep(sleep_s)  # lets tests observe several trials running at once
        with tempfile.TemporaryDirectory() as d:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch},
                       Path(d) / "state.pt")
            ok = report_epoch(epoch, {"score": val, "train_loss": total / len(xt),
                                      "epoch_s": time.perf_counter() - t0,
                                      "peers_seen": _peers(config), "started_at": started_at}, d)
        if not ok:
            return


def _peers(config: dict) -> int:
    folder = config.get("synth.rendezvous")
    return len(list(Path(folder).iterdir())) if folder and Path(folder).is_dir() else 0
