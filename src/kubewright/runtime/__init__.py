"""The shared runtime every add-on stands on; it knows nothing about any add-on."""
