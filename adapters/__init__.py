"""The tech adapter client and the reference SQLite tech adapter."""
