"""Shared fixtures for the cleaning-engine tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def seed() -> None:
    """Make every test reproducible."""
    torch.manual_seed(1234)
