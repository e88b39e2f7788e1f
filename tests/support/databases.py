"""Fresh, migrated databases for tests: SQLite files and PostgreSQL databases.

Each backend is migrated once per test run into a template; every test then gets a copy
(a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL), which is fast and keeps
tests, and parallel test runs, from seeing each other's rows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import asyncpg

from store.migrate import upgrade_async

PG_DSN = os.environ.get("SWITCHBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [
    b.strip() for b in os.environ.get("SWITCHBOARD_TEST_DATABASES", "sqlite,postgres").split(",")
]


def _pg_url(name: str) -> str:
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


class DatabaseFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:10]
        self._sqlite_template: Path | None = None
        self._pg_template: str | None = None
        self._pg_created: list[str] = []

    async def create(self, backend: str) -> str:
        if backend == "sqlite":
            return await self._create_sqlite()
        if backend == "postgres":
            return await self._create_pg()
        raise ValueError(f"unknown test database backend {backend!r}")

    async def _create_sqlite(self) -> str:
        if self._sqlite_template is None:
            template = self.workdir / "template.db"
            await upgrade_async(f"sqlite+aiosqlite:///{template}")
            self._sqlite_template = template
        path = self.workdir / f"db-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(self._sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"

    async def _create_pg(self) -> str:
        admin = await asyncpg.connect(PG_DSN)
        try:
            if self._pg_template is None:
                template = f"sbt_{self.run_id}_template"
                await admin.execute(f'CREATE DATABASE "{template}"')
                self._pg_created.append(template)
                await upgrade_async(_pg_url(template))
                self._pg_template = template
            name = f"sbt_{self.run_id}_{uuid.uuid4().hex[:8]}"
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._pg_template}"')
            self._pg_created.append(name)
            return _pg_url(name)
        finally:
            await admin.close()

    async def drop_all(self) -> None:
        if not self._pg_created:
            return
        admin = await asyncpg.connect(PG_DSN)
        try:
            for name in reversed(self._pg_created):
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
