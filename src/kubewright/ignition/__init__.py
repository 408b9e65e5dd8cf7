"""Ignition Sync operator (CRD, controller, git webhook receiver, agent)."""
