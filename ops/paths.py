"""Where things live in a checkout. Every folder named here except the tracked ones is git-ignored."""

from __future__ import annotations

import os
from pathlib import Path

from infra import embedded_server
from infra.settings import PROJECT_DIR_ENV_VAR

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where Pulumi.yaml and the Pulumi.<stack>.yaml files are read from.
PROJECT_DIR = Path(os.environ.get(PROJECT_DIR_ENV_VAR) or REPO_ROOT)
STATE_DIR = embedded_server.state_dir(os.environ)  # HEADHUNTER_STATE_DIR, else .state/
TOOLS_DIR = REPO_ROOT / ".tools"
TOOLS_BIN = TOOLS_DIR / "bin"
PULUMI_HOME = TOOLS_DIR / "pulumi-home"
PULUMI_BACKEND_DIR = STATE_DIR / "pulumi"
MIGRATIONS_DIR = REPO_ROOT / "migrations"
