"""Research chapters' logic: each module computes one chapter's tables, records and conclusions."""
