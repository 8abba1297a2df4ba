"""Platforms: how a cluster runs and is hurt on one kind of host."""
