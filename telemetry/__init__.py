"""What an operator sees of a run: structured logs, traces and metrics (secrets taken out first)."""
