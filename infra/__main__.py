"""Entry point for `pulumi up` with the official CLI (Pulumi.yaml: main: infra/)."""

from infra.program import define_stack

define_stack()
