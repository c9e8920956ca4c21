"""Measurements of the rotation on the local cloud; figures go to docs/, never into tests."""
