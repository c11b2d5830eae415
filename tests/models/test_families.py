"""Every model family implements the interface the loop, the run folder and sampling use."""
from __future__ import annotations

import math

import pytest
import torch

from genaudio.models.config import MODELS, GANConfig, LSTMConfig, TrainConfig
from genaudio.models.data import WindowSet
from genaudio.models.families import FAMILIES, Updater, build_family
from genaudio.models.parallel import DistContext

TINY = {"lstm": TrainConfig(model="lstm", lstm=LSTMConfig(layers=1, hidden=8, context=7, dropout=0.0), seed=1),
        "gan": TrainConfig(model="gan", gan=GANConfig(latent=4, patch=8, channels=16, layers=2), seed=1)}


def test_every_configurable_model_has_a_family():
    assert set(FAMILIES) == set(MODELS) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_family_interface(name, periodic):
    cfg = TINY[name]
    torch.manual_seed(0)
    fam = build_family(cfg, periodic.dim)
    assert fam.name == name and fam.monitor and set(fam.progress_keys)
    opts = fam.optimizers()
    assert set(opts) <= set(fam.modules)
    upd = Updater(opts, fam.modules, dist=DistContext(), grad_clip=1.0, amp=False, device=torch.device("cpu"))
    ds = WindowSet(periodic.codes, window=cfg.window, hop=4)
    before = {k: v.clone() for k, v in fam.state_dict()[next(iter(opts))].items() if v.is_floating_point()}
    losses = fam.train_step(ds[list(range(8))], 0, upd)
    assert losses and all(math.isfinite(v) for v in losses.values())
    after = fam.state_dict()[next(iter(opts))]
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the step updated the weights
    val = fam.validate(ds, torch.device("cpu"))
    assert fam.monitor in val and math.isfinite(val["code_fd"])
    assert fam.validate(ds, torch.device("cpu")) == val  # deterministic
    assert all(m.training for m in fam.modules.values())  # back in training mode
    primes = ds[[0, 1, 2]][:, :4]
    x = fam.sample(2, 11, generator=torch.Generator().manual_seed(0), device="cpu", primes=primes)
    assert x.shape == (2, 11, periodic.dim)
    # state round trip: a fresh family with the saved state samples the same frames
    other = build_family(cfg, periodic.dim)
    other.load_state_dict(fam.state_dict())
    for m in list(fam.modules.values()) + list(other.modules.values()):
        m.eval()
    a = fam.sample(2, 5, generator=torch.Generator().manual_seed(3), device="cpu", primes=primes, temperature=0.0)
    b = other.sample(2, 5, generator=torch.Generator().manual_seed(3), device="cpu", primes=primes, temperature=0.0)
    assert torch.equal(a, b)
