"""The project's model, pure data and no I/O: role names and who may do what (where each table lives
is its tree's: migrations/schema.py).

The Pulumi program (infra/), the verification suite (tests/infra), the provider-less fixtures
(fixtures/) and the generated docs all read it; none restates it.
"""
