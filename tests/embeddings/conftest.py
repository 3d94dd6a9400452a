"""Fixtures of the embeddings tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def torch_encoder():
    """The bundled model on torch fp32: the reference every backend is checked against."""
    from embeddings import get_encoder

    enc = get_encoder(backend="torch")
    assert enc.dim == 384
    return enc
