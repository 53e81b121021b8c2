"""Research chapters\x27 logic: one module or small subpackage per chapter."""
