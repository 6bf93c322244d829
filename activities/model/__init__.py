"""Model turns: the provider behind one protocol (Claude, or a scripted replay)."""
