"""Guide efficacy and off-targeting chapter."""
