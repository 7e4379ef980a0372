"""The policy pack, as the Python language host runs it for `pulumi preview --policy-pack policy`."""

from pulumi_policy import EnforcementLevel, PolicyPack

from policy import secret_config_keys
from policy.policies import POLICIES

# Before PolicyPack builds its analyzer: the analyzer must keep the stack's secret keys when the engine sends them.
secret_config_keys.keep()
PolicyPack("headhunter-db-model", POLICIES, EnforcementLevel.MANDATORY)
