"""Shared utilities: config, metrics, checkpoints, devices, image I/O."""
