"""The agent roles: prompt, tools, result model, turn budget, stage and step kind — data only."""

from contracts.agents import Role
from roles.coder import CODER
from roles.planner import PLANNER
from roles.reviewer import REVIEWER
from roles.spec import RoleSpec, StepKind
from roles.tester import TESTER

# The registry; keyed by exactly the names of `contracts.agents.Role` (tests/roles checks both ways).
ROLES: dict[Role, RoleSpec] = {r.name: r for r in (PLANNER, CODER, TESTER, REVIEWER)}


def spec_of(name: str) -> RoleSpec:
    """The role a routing step names (policy.routing rows name roles by plain strings)."""
    for spec in ROLES.values():
        if spec.name == name:
            return spec
    raise KeyError(f"no role {name!r} is registered in roles.ROLES")


__all__ = ["CODER", "PLANNER", "REVIEWER", "ROLES", "TESTER", "RoleSpec", "StepKind", "spec_of"]
