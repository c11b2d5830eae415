"""Fixtures of the model tests: synthetic code sequences and a small real encoded store."""
from __future__ import annotations

import pytest

from .synth import build_encoded_store, periodic_codes


@pytest.fixture(scope="session")
def periodic():
    return periodic_codes()


@pytest.fixture(scope="session")
def encoded_store(tmp_path_factory, sample_files):
    return build_encoded_store(tmp_path_factory.mktemp("enc") / "ENC", sample_files)
