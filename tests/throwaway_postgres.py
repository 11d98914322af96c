"""A PostgreSQL server of a test's own, on its own port, that the test can stop and start again.

The shared server on 127.0.0.1:5432 must never be stopped by a test, so outage tests start a throwaway
instance with this machine's server binaries (Debian puts them in /usr/lib/postgresql/<version>/bin).
PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def why_unavailable() -> str | None:
    """Why a throwaway server cannot run here (for pytest.skip), or None when it can."""
    if server_binaries() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThrowawayPostgres:
    """`start()`, `stop()` (a fast shutdown: connections are cut) and `start()` again, on one port."""

    def __init__(self) -> None:
        binaries = server_binaries()
        assert binaries is not None, why_unavailable()
        self.bin = binaries
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="council-pg-"))
        self.data = self.root / "data"
        self._process: subprocess.Popen[bytes] | None = None
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _demote(self) -> None:
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True, preexec_fn=self._demote, cwd=self.root)

    async def start(self, timeout: float = 20.0) -> None:
        assert self._process is None, "already running"
        self._process = await asyncio.to_thread(
            subprocess.Popen,
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=self._demote,
            cwd=self.root,
        )
        async with asyncio.timeout(timeout):
            while not await self._answers():
                assert self._process.poll() is None, "the throwaway PostgreSQL server exited at start"
                await asyncio.sleep(0.1)

    async def _answers(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        # Accepting connections is not yet accepting logins ("the database system is starting up").
        result = await asyncio.to_thread(
            subprocess.run,
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    async def stop(self) -> None:
        """A fast shutdown (SIGINT): open connections are cut and new ones refused until `start()`."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(2)
        await asyncio.to_thread(process.wait, 30)

    async def close(self) -> None:
        await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def cleanup(server: ThrowawayPostgres) -> Iterator[ThrowawayPostgres]:
    try:
        yield server
    finally:
        process = server._process
        if process is not None:
            process.kill()
            process.wait(10)
        shutil.rmtree(server.root, ignore_errors=True)
