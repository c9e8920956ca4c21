"""Rotation core: mints, stores, verifies and promotes Google access tokens in Secrets Manager."""
