"""The four agent roles: prompt, tools, result model and turn budget — data only."""

from contracts.agents import Role
from roles.coder import CODER
from roles.planner import PLANNER
from roles.reviewer import REVIEWER
from roles.spec import RoleSpec
from roles.tester import TESTER

# The registry; keyed by exactly the names of `contracts.agents.Role` (tests/roles checks both ways).
ROLES: dict[Role, RoleSpec] = {r.name: r for r in (PLANNER, CODER, TESTER, REVIEWER)}

__all__ = ["CODER", "PLANNER", "REVIEWER", "ROLES", "TESTER", "RoleSpec"]
