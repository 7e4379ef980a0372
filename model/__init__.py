"""The project's model, pure data and no I/O: role names, where each table lives, who may do what.

The Pulumi program (infra/), the verification suite (tests/infra), the provider-less fixtures
(fixtures/) and the generated docs all read it; none restates it.
"""
