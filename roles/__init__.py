"""The four agent roles: prompt, tools, result model and turn budget — data only."""

from roles.coder import CODER
from roles.planner import PLANNER
from roles.reviewer import REVIEWER
from roles.spec import RoleSpec
from roles.tester import TESTER

ROLES: dict[str, RoleSpec] = {r.name: r for r in (PLANNER, CODER, TESTER, REVIEWER)}

__all__ = ["CODER", "PLANNER", "REVIEWER", "ROLES", "TESTER", "RoleSpec"]
