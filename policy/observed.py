"""A resource as the engine shows it to a policy, in plain values: what the rules read.

pulumi-policy hands a validation the resource's properties behind a proxy that raises
UnknownValueError when a value that preview cannot know yet (a generated password, the tables a
migration will report) is read. Here every such value becomes UNKNOWN, once, so a rule reads what
is known and decides itself what an unknown value means (a value no config holds). Secrets arrive
unwrapped: a policy sees a secret's value, not that it was one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from pulumi_policy import PolicyResource, ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError


class Unknown:
    """A value the engine cannot know during preview: a resource computes it when it is created."""

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Observed:
    type: str
    """The resource's type token, e.g. postgresql:index/grant:Grant."""
    name: str
    """Its name in the program (the URN's last part)."""
    urn: str
    props: Mapping[str, object]
    """Its inputs (a resource validation) or its outputs (a stack validation), in plain values."""
    protect: bool = False
    parent: Observed | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.type})"

    def text(self, key: str) -> str | None:
        """A string property; None when it is absent or unknown."""
        value = self.props.get(key)
        return value if isinstance(value, str) else None

    def texts(self, key: str) -> list[str] | None:
        """A list of strings (privileges, roles); [] when absent, None when it or an item is unknown."""
        value = self.props.get(key)
        if value is None:
            return []
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        return None


def plain(value: object) -> object:
    """The value with every proxy replaced by a dict or list, and every unknown by UNKNOWN."""
    if isinstance(value, Mapping):
        return {str(key): _known(partial(value.__getitem__, key)) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_known(partial(value.__getitem__, index)) for index in range(len(value))]
    return value


def _known(read: Callable[[], object]) -> object:
    try:
        return plain(read())
    except UnknownValueError:
        return UNKNOWN


def from_validation(args: ResourceValidationArgs) -> Observed:
    """The resource a resource validation is given (its inputs)."""
    props = plain(args.props)
    assert isinstance(props, dict)
    return Observed(args.resource_type, args.name, args.urn, props, bool(args.opts.protect))


def from_stack(resources: Sequence[PolicyResource]) -> list[Observed]:
    """The stack a stack validation is given (each resource's outputs), each with its parent."""
    built: dict[str, Observed] = {}

    def build(resource: PolicyResource) -> Observed:
        if resource.urn not in built:
            parent = build(resource.parent) if resource.parent is not None else None
            props = plain(resource.props)
            assert isinstance(props, dict)
            protect = bool(resource.opts.protect)
            built[resource.urn] = Observed(resource.resource_type, resource.name, resource.urn, props, protect, parent)
        return built[resource.urn]

    return [build(resource) for resource in resources]
