"""Every shipped stack file passes the real engine's config validation, and bad config is refused by name.

Each stack file is previewed with plain `pulumi preview`, as its user would after `pulumi config set
--secret headhunter-db:adminPassword`. Previewing creates needs no server, so the remote stacks'
hosts need not exist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fixtures import tls
from fixtures.project_stack import TEST_PASSPHRASE, project_folder
from model.server_versions import DEFAULT_MAJOR
from ops.deploy.driver import DEV_PASSPHRASE, DEV_STACK
from ops.localpg import embedded
from ops.paths import REPO_ROOT
from ops.toolchain import pinned

pytestmark = [pytest.mark.engine, pytest.mark.provider]
SHIPPED_STACKS = sorted(path.name.split(".")[1] for path in REPO_ROOT.glob("Pulumi.*.yaml"))


def project_copy(folder: Path, stack: str) -> dict[str, str]:
    """The project with one shipped stack file, as it is in the repository, and the TLS files it names."""
    # The dev stack file carries the salt of its published passphrase; the others get theirs here.
    env = project_folder(folder, DEV_PASSPHRASE if stack == DEV_STACK else TEST_PASSPHRASE)
    shutil.copyfile(REPO_ROOT / f"Pulumi.{stack}.yaml", folder / f"Pulumi.{stack}.yaml")
    place_tls_files(folder, stack)
    return env


def place_tls_files(folder: Path, stack: str) -> None:
    """What the user puts in certs/ before a first deploy (certs/README.md), made by a test CA here."""
    config = yaml.safe_load((folder / f"Pulumi.{stack}.yaml").read_text())["config"]
    ca = tls.certificate_authority("stand-in for the provider's CA")
    client = tls.issue(ca, "headhunter_admin")
    contents = {"sslRootCert": ca.cert_pem(), "sslCert": client.cert_pem(), "sslKey": client.key_pem()}
    for key, content in contents.items():
        if relative := config.get(f"headhunter-db:{key}"):
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(content)
            (folder / relative).chmod(0o600)


def pulumi(folder: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [str(pinned.cli_path()), *args, "--non-interactive"]
    return subprocess.run(command, cwd=folder, env=env, input=stdin, capture_output=True, text=True, timeout=300)


def test_every_stack_is_shipped() -> None:
    assert SHIPPED_STACKS == ["dev", "prod", "staging"]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_a_shipped_stack_file_passes_config_validation(stack: str, tmp_path: Path) -> None:
    env = project_copy(tmp_path, stack)
    assert pulumi(tmp_path, env, "stack", "init", stack).returncode == 0
    running = embedded.wanted_major()
    if stack == "dev" and running != DEFAULT_MAJOR:  # a checkout whose cluster is of another major says so
        major = pulumi(tmp_path, env, "config", "set", "headhunter-db:embeddedServerVersion", str(running))
        assert major.returncode == 0, major.stderr
    if stack != "dev":  # the dev stack's server is the embedded one, with its own password
        password = "pw-from-stdin"
        secret = pulumi(tmp_path, env, "config", "set", "--secret", "headhunter-db:adminPassword", stdin=password)
        assert secret.returncode == 0, secret.stderr
        assert password not in (tmp_path / f"Pulumi.{stack}.yaml").read_text()
    preview = pulumi(tmp_path, env, "preview", "--stack", stack)
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr
    assert "to create" in preview.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (["headhunter-db:hostname", "db.internal"], "headhunter-db:hostname is not a key this program reads"),
        (["headhunter-db:adminPassword", "pw", "--plaintext"], "headhunter-db:adminPassword is stored in plain text"),
        (["headhunter-db:port", "five"], "headhunter-db:port' must be of type 'integer'"),
        (["headhunter-db:sslRootCert", "certs/missing.pem"], "certs/missing.pem, which is not a file"),
    ],
)
def test_bad_config_is_refused_by_name_before_any_resource(setting: list[str], message: str, tmp_path: Path) -> None:
    env = project_copy(tmp_path, "staging")
    pulumi(tmp_path, env, "stack", "init", "staging")
    pulumi(tmp_path, env, "config", "set", "--secret", "headhunter-db:adminPassword", stdin="pw")
    assert pulumi(tmp_path, env, "config", "set", *setting).returncode == 0
    preview = pulumi(tmp_path, env, "preview", "--stack", "staging")
    assert preview.returncode != 0
    assert message in preview.stdout + preview.stderr
    assert "Traceback" not in preview.stdout + preview.stderr  # a mistake in a stack file is not a crash
    assert "postgresql:index" not in preview.stdout
