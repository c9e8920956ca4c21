"""Runs the whole rotation system on one machine: moto for AWS, an emulator for Google."""
