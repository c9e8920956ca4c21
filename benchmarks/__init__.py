"""Measurements of the rotation on the local cloud; figures go to the README, never into tests."""
