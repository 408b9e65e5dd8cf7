"""kubewright: Kubernetes add-ons rebuilt in Python on one shared runtime."""

__version__ = "0.1.0"
