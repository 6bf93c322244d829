"""`python -m starter` is the `forgeflow` command."""

from starter.cli import main

main()
