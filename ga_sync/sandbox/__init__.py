"""A local GA4 emulator (Admin API v1beta and Data API v1beta) that the official clients talk to unchanged."""
