"""Build the two plugins the Go module proxy does not serve from an offline source mirror.

The postgresql resource plugin (pulumi/pulumi-postgresql's provider and its Terraform upstream)
and the Python language host (pulumi/pulumi's sdk/python/cmd/pulumi-language-python) are not on
the module proxy that these machines reach; everything they depend on is. An air-gapped company
keeps such sources in an internal store: here that is a folder of the public source archives,
named by HEADHUNTER_PLUGIN_SOURCES (by default `../shared/vendor` beside the checkout, when it
exists). Every archive is checked against the sha256 sums committed in
tools/plugin-sources/SHA256SUMS before anything is unpacked; the builds run in `.tools/build/`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ops import paths
from ops.errors import ExitCode, UserError
from ops.toolchain.go_build import run_go

MIRROR_ENV = "HEADHUNTER_PLUGIN_SOURCES"
DEFAULT_MIRROR = paths.REPO_ROOT.parent / "shared" / "vendor"
SUMS_FILE = paths.REPO_ROOT / "tools" / "plugin-sources" / "SHA256SUMS"
BUILD_DIR = paths.TOOLS_DIR / "build"

PROVIDER_ARCHIVE = "pulumi-postgresql-{version}.tar.gz"
# The Terraform provider at the commit that pulumi-postgresql v3.18.0 pins as its `upstream` submodule.
PROVIDER_UPSTREAM_ARCHIVE = "terraform-provider-postgresql-ff936b9.tar.gz"
LANGUAGE_HOST_ARCHIVE = "pulumi-language-python-{version}.tar.gz"
PROVIDER_VERSION_VARIABLE = "github.com/pulumi/pulumi-postgresql/provider/v3/pkg/version.Version"
CLI_VERSION_VARIABLE = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"


@dataclass(frozen=True)
class Mirror:
    folder: Path
    named_by: str
    """How the folder was chosen, for messages: the variable or the default."""

    def archive(self, name: str) -> Path:
        """The archive, checked against the committed sum; raises before anything is unpacked."""
        expected = committed_sums().get(name)
        if expected is None:
            raise UserError(
                f"{SUMS_FILE.relative_to(paths.REPO_ROOT)} has no sha256 sum for {name}: add the sum of the archive "
                "you trust (sha256sum FILE) and commit it.",
                ExitCode.TOOLCHAIN,
            )
        path = self.folder / name
        if not path.is_file():
            raise UserError(
                f"the plugin source mirror {self.folder} ({self.named_by}) has no {name}: put that archive there, "
                f"or set {MIRROR_ENV} to a folder that has it.",
                ExitCode.TOOLCHAIN,
            )
        actual = file_sha256(path)
        if actual != expected:
            raise UserError(
                f"{path} does not match its committed sha256 sum (expected {expected}, found {actual}): the archive "
                "was changed or damaged. Nothing was built. Replace it with the published archive.",
                ExitCode.TOOLCHAIN,
            )
        return path


def find_mirror() -> Mirror | None:
    """The folder named by HEADHUNTER_PLUGIN_SOURCES, else ../shared/vendor when it exists, else None."""
    named = os.environ.get(MIRROR_ENV)
    if named:
        folder = Path(named).expanduser().resolve()
        if not folder.is_dir():
            raise UserError(f"{MIRROR_ENV} names {folder}, which is not a folder: fix the path.", ExitCode.BAD_INPUT)
        return Mirror(folder, MIRROR_ENV)
    if DEFAULT_MIRROR.is_dir():
        return Mirror(DEFAULT_MIRROR.resolve(), f"the default; set {MIRROR_ENV} to use another")
    return None


def committed_sums() -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in SUMS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack(archive: Path, into: Path) -> Path:
    """Unpack a checked archive into `into`; returns the archive's single top-level folder."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tops = {member.name.split("/", 1)[0] for member in tar.getmembers()}
        if len(tops) != 1:
            raise UserError(f"{archive} should hold one top-level folder, not {sorted(tops)}.", ExitCode.TOOLCHAIN)
        tar.extractall(into, filter="data")  # no absolute paths, links out of the folder or device files
    return into / tops.pop()


def fresh_build_dir(name: str) -> Path:
    folder = BUILD_DIR / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def build_provider(mirror: Mirror, version: str) -> Path:
    """pulumi-resource-postgresql, as the provider's own Makefile builds it; returns the binary."""
    # Both archives are checked before either is unpacked.
    provider_archive = mirror.archive(PROVIDER_ARCHIVE.format(version=version))
    upstream_archive = mirror.archive(PROVIDER_UPSTREAM_ARCHIVE)
    work = fresh_build_dir(f"pulumi-resource-postgresql-{version}")
    source = unpack(provider_archive, work)
    # provider/go.mod replaces the upstream module with ../upstream, where the repository keeps its submodule.
    unpack(upstream_archive, work / "upstream-archive").rename(source / "upstream")
    for patch in sorted((source / "patches").glob("*.patch")):
        subprocess.run(
            ["patch", "--quiet", "-p1", "-i", str(patch)], cwd=source / "upstream", check=True, capture_output=True
        )
    provider = source / "provider"
    component = f"postgresql provider v{version}"
    run_go(
        ["run", "./generate.go"],
        component + " schema",
        provider / "cmd" / "pulumi-resource-postgresql",
        extra_env={"VERSION": version},
    )
    binary = work / "pulumi-resource-postgresql"
    ldflags = f"-s -w -X {PROVIDER_VERSION_VARIABLE}={version}"
    run_go(["build", "-ldflags", ldflags, "-o", str(binary), "./cmd/pulumi-resource-postgresql"], component, provider)
    return binary


def build_language_host(mirror: Mirror, version: str, target: Path) -> None:
    """pulumi-language-python at the CLI's version, against the served pkg/v3 and sdk/v3 modules."""
    archive = mirror.archive(LANGUAGE_HOST_ARCHIVE.format(version=version))
    work = fresh_build_dir(f"pulumi-language-python-{version}")
    module = unpack(archive, work) / "sdk" / "python" / "cmd" / "pulumi-language-python"
    # Its go.mod replaces pkg/v3 and sdk/v3 with folders of the pulumi repository that the archive
    # does not hold; the same versions are served by the module proxy.
    edit = ["mod", "edit", "-dropreplace", "github.com/pulumi/pulumi/pkg/v3"]
    edit += ["-dropreplace", "github.com/pulumi/pulumi/sdk/v3"]
    edit += ["-require", f"github.com/pulumi/pulumi/pkg/v3@v{version}"]
    edit += ["-require", f"github.com/pulumi/pulumi/sdk/v3@v{version}"]
    run_go(edit, "language host go.mod", module, announce=False)
    ldflags = f"-s -w -X {CLI_VERSION_VARIABLE}=v{version}"
    run_go(["build", "-ldflags", ldflags, "-o", str(target), "."], f"Python language host v{version}", module)
