"""An evaluation suite file (JSON lines, one SWE-bench instance each), read line by line. Pure.

A line that is not a valid instance is a problem named with its line number, and the rest of the
suite still runs; an instance_id seen before is such a problem too (results are keyed by it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError

from contracts.eval import EvalInstance


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Suite:
    instances: list[EvalInstance] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)


def parse_suite(text: str) -> Suite:
    suite = Suite()
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            suite.problems.append(LineProblem(number, f"not JSON ({err.msg} at column {err.colno})"))
            continue
        if not isinstance(data, dict):
            suite.problems.append(LineProblem(number, "not a JSON object"))
            continue
        try:
            instance = EvalInstance.model_validate(data)
        except ValidationError as err:
            fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'instance'}: {e['msg']}" for e in err.errors())
            suite.problems.append(LineProblem(number, fields))
            continue
        if instance.instance_id in seen:
            first = seen[instance.instance_id]
            suite.problems.append(LineProblem(number, f"instance_id {instance.instance_id!r} was on line {first}"))
            continue
        seen[instance.instance_id] = number
        suite.instances.append(instance)
    return suite
