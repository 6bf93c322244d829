"""Object storage: where a run's content lives beyond its history (storage/store.py)."""
