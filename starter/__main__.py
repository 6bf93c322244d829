"""`python -m starter` is the `forgeflow` command."""

from starter.cli import app

app(prog_name="forgeflow")
