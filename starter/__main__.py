"""`python -m starter` is the `forgeflow` command."""

from starter.cli import main

if __name__ == "__main__":
    main()
