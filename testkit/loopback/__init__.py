"""Loopback servers speaking the real wire protocols, for the real clients to talk to."""
