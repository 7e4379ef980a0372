"""The stack config keys the engine keeps encrypted, as it tells a policy pack.

A policy sees config values decrypted and resource inputs with their secrets unwrapped, so neither
says whether a password was stored in plain text. The engine does say it: its ConfigureStack call
carries the stack's secret keys (`config_secret_keys`, pulumi/proto/pulumi/analyzer.proto), which
pulumi-policy 1.21 receives and drops (it keeps the request's tags only). The pack's analyzer keeps
them too: a subclass of pulumi-policy's analyzer, put in its place before PolicyPack builds it.
The class is pulumi-policy's own, not its API: tests/unit/test_policy_rules.py fails on a version
that renames it or no longer hears ConfigureStack, before a preview would run without the keys.
"""

from __future__ import annotations

from pulumi.runtime import proto
from pulumi_policy import policy as sdk

_heard: list[frozenset[str]] = []
"""What the engine said, once it has (one stack per policy pack process)."""


class _AnalyzerKeepingSecretKeys(sdk._PolicyAnalyzerServicer):
    def ConfigureStack(  # noqa: N802 (gRPC's method name)
        self, request: proto.AnalyzerStackConfigureRequest, _context: object
    ) -> proto.AnalyzerStackConfigureResponse:
        _heard[:] = [frozenset(request.config_secret_keys)]
        response: proto.AnalyzerStackConfigureResponse = super().ConfigureStack(request, _context)
        return response


def keep() -> None:
    """Make the analyzer that PolicyPack builds keep the secret keys; call it before PolicyPack(...)."""
    sdk._PolicyAnalyzerServicer = _AnalyzerKeepingSecretKeys  # type: ignore[misc]


def secret_keys() -> frozenset[str] | None:
    """The stack's encrypted config keys (`ns:key`); None until the engine has said (or if it never does)."""
    return _heard[0] if _heard else None
