"""Spotalis: spot / on-demand replica split (controllers + webhook)."""
