"""What a contract does with a field it does not know.

Workers of two versions run side by side during a deployment, and a run's history outlives the code
that wrote it: an activity's input written by a newer workflow, or its result written by a newer
worker, may carry an optional field this version has never heard of. Those contracts are DURABLE:
they skip what they do not know (and a newer field is always optional, so nothing is lost for the
version that added it). What a person or the model writes is STRICT: there an unknown field is a
typo or a mistake, and the error that names it is the useful answer.
"""

from __future__ import annotations

from pydantic import ConfigDict

DURABLE = ConfigDict(extra="ignore")
STRICT = ConfigDict(extra="forbid")
