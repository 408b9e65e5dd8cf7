"""Spotalis' leader-only controllers (spec 3.7-3.10): one workload reconciler and its wiring."""

from __future__ import annotations

from kubewright.spotalis.controllers.wiring import workload_controllers
from kubewright.spotalis.controllers.workload import WorkloadReconciler

__all__ = ["WorkloadReconciler", "workload_controllers"]
