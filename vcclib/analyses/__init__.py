"""Chapter logic: functions that compute each chapter's tables and records, and its conclusions."""
