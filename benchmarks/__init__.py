"""Measurements of the rotation on the local cloud; figures go to the docs pages, never into tests."""
