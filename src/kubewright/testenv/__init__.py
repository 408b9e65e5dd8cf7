"""Local Kubernetes control plane for development and tests: build, start, stop, pytest plugin."""
