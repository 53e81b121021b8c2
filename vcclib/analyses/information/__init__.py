"""Information content chapter."""
