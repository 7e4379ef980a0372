"""The program `pulumi up` runs (Pulumi.yaml: `main: infra/`), through the scripts or by hand."""

from infra.program import define_stack

define_stack()
