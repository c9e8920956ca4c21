"""Operator tools for a deployed stack: its Google-side setup, and the check after a deploy."""
