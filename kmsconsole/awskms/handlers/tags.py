"""Wire handlers (filled in by the keys issue)."""
