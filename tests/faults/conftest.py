"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres_cluster import PrivateCluster
from tests.worker.conftest import start_worker

__all__ = ["pg_cluster", "start_worker"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PrivateCluster]:
    """A PostgreSQL server the fault tests may stop and crash (never the shared one)."""
    cluster = PrivateCluster()
    cluster.init()
    cluster.start()
    yield cluster
    cluster.destroy()
