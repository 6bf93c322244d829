"""How run data is stored in Temporal: encrypted by a codec, large values kept outside history."""
