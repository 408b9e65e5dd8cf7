"""Every public contract string of Spotalis, in one place (spec 2.1, 2.2, 2.4, 2.5, 3.10, 7).

App teams' manifests name the label and annotations, dashboards and alerts name the metrics, and
runbooks grep the events and log messages. Renaming one breaks someone who switched from the upstream
Go operator, so tests assert each string against the spec tables instead of trusting a grep.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# --- 2.1 read from users -----------------------------------------------------------------------------------
DOMAIN: Final = "spotalis.io"
ENABLED_LABEL: Final = "spotalis.io/enabled"
# Exactly this value: upstream's gate accepted `True`, then its parser evicted all spot (spec 2.1 [fix]).
ENABLED_VALUE: Final = "true"

SPOT_PERCENTAGE_ANNOTATION: Final = "spotalis.io/spot-percentage"
MIN_ON_DEMAND_ANNOTATION: Final = "spotalis.io/min-on-demand"
DISRUPTION_SCHEDULE_ANNOTATION: Final = "spotalis.io/disruption-schedule"
DISRUPTION_DURATION_ANNOTATION: Final = "spotalis.io/disruption-duration"
FALLBACK_TIMEOUT_ANNOTATION: Final = "spotalis.io/fallback-timeout"

WINDOW_ANNOTATIONS: Final = (DISRUPTION_SCHEDULE_ANNOTATION, DISRUPTION_DURATION_ANNOTATION)
WORKLOAD_ANNOTATIONS: Final = (
    SPOT_PERCENTAGE_ANNOTATION,
    MIN_ON_DEMAND_ANNOTATION,
    DISRUPTION_SCHEDULE_ANNOTATION,
    DISRUPTION_DURATION_ANNOTATION,
    FALLBACK_TIMEOUT_ANNOTATION,
)

# --- 2.2 written by Spotalis -------------------------------------------------------------------------------
CAPACITY_INTENT_LABEL: Final = "spotalis.io/capacity-intent"
ADMISSION_ID_ANNOTATION: Final = "spotalis.io/admission-id"
SPOT_UNAVAILABLE_UNTIL_ANNOTATION: Final = "spotalis.io/spot-unavailable-until"
SPOT_FALLBACKS_ANNOTATION: Final = "spotalis.io/spot-fallbacks"


class CapacityType(StrEnum):
    """The values of `spotalis.io/capacity-intent` (and of the `replica_type` metric label)."""

    SPOT = "spot"
    ON_DEMAND = "on-demand"


# --- 2.4 / 2.5 endpoints, Lease, webhook answers -----------------------------------------------------------
LEASE_NAME: Final = "spotalis-controller-leader"
WEBHOOK_NAME: Final = "pod.spotalis.io"
WEBHOOK_PATHS: Final = ("/mutate", "/mutate-v1-pod")
MAX_REVIEW_BYTES: Final = 3 * 1024 * 1024

REVIEW_UNSUPPORTED_KIND: Final = "unsupported resource kind"
REVIEW_NOT_MANAGED: Final = "not managed by Spotalis"
REVIEW_CONFIG_ERROR: Final = "failed to get workload config"
ERROR_CODE_INVALID_REQUEST: Final = "INVALID_ADMISSION_REQUEST"
ERROR_CODE_EMPTY_REQUEST: Final = "EMPTY_ADMISSION_REQUEST"


# --- 3.10 PDB pre-check reasons [compat] -------------------------------------------------------------------
class DisruptionReason(StrEnum):
    ALLOWED = "allowed"
    NO_PDB = "no-pdb"
    MIN_AVAILABLE_VIOLATED = "min-available-violated"
    MAX_UNAVAILABLE_REACHED = "max-unavailable-reached"
    OUTSIDE_DISRUPTION_WINDOW = "outside-disruption-window"
    TOO_MANY_DISRUPTED = "too-many-disrupted"


# --- 7.1 metrics  -------------------------------------------------------------------------------------------
# [compat] names (values corrected, spec 7.1).
METRIC_WORKLOAD_REPLICAS: Final = "spotalis_workload_replicas"
METRIC_RECONCILIATIONS: Final = "spotalis_reconciliations_total"
METRIC_RECONCILIATION_ERRORS: Final = "spotalis_reconciliation_errors_total"
METRIC_REBALANCING_BLOCKED_BY_PDB: Final = "spotalis_rebalancing_blocked_by_pdb_total"
METRIC_WEBHOOK_REQUESTS: Final = "spotalis_webhook_requests_total"
METRIC_WEBHOOK_MUTATIONS: Final = "spotalis_webhook_mutations_total"
METRIC_CONTROLLER_LAST_SEEN: Final = "spotalis_controller_last_seen_timestamp"
METRIC_LEADER_ELECTION_STATUS: Final = "spotalis_leader_election_status"

# [new] names. The spec abbreviates them after `spotalis_workload_desired_replicas`; per-workload gauges
# keep the `spotalis_workload_` prefix, process-wide series take plain `spotalis_`.
METRIC_WORKLOAD_DESIRED_REPLICAS: Final = "spotalis_workload_desired_replicas"
METRIC_WORKLOAD_LEAVING_REPLICAS: Final = "spotalis_workload_leaving_replicas"
METRIC_WORKLOAD_SPOT_UNAVAILABLE: Final = "spotalis_workload_spot_unavailable"
METRIC_SPOT_FALLBACKS: Final = "spotalis_spot_fallbacks_total"
METRIC_EVICTIONS: Final = "spotalis_evictions_total"
METRIC_WEBHOOK_DECISIONS: Final = "spotalis_webhook_decisions_total"
METRIC_WEBHOOK_DECISION_DURATION: Final = "spotalis_webhook_decision_duration_seconds"
METRIC_NODES: Final = "spotalis_nodes"
METRIC_RESYNC_DURATION: Final = "spotalis_resync_duration_seconds"
METRIC_CONFIG_RELOAD: Final = "spotalis_config_reload_total"

COMPAT_METRICS: Final = (
    METRIC_WORKLOAD_REPLICAS,
    METRIC_RECONCILIATIONS,
    METRIC_RECONCILIATION_ERRORS,
    METRIC_REBALANCING_BLOCKED_BY_PDB,
    METRIC_WEBHOOK_REQUESTS,
    METRIC_WEBHOOK_MUTATIONS,
    METRIC_CONTROLLER_LAST_SEEN,
    METRIC_LEADER_ELECTION_STATUS,
)
NEW_METRICS: Final = (
    METRIC_WORKLOAD_DESIRED_REPLICAS,
    METRIC_WORKLOAD_LEAVING_REPLICAS,
    METRIC_WORKLOAD_SPOT_UNAVAILABLE,
    METRIC_SPOT_FALLBACKS,
    METRIC_EVICTIONS,
    METRIC_WEBHOOK_DECISIONS,
    METRIC_WEBHOOK_DECISION_DURATION,
    METRIC_NODES,
    METRIC_RESYNC_DURATION,
    METRIC_CONFIG_RELOAD,
)

# Metric label names.
LABEL_NAMESPACE: Final = "namespace"
LABEL_WORKLOAD: Final = "workload"
LABEL_WORKLOAD_TYPE: Final = "workload_type"
WORKLOAD_LABELS: Final = (LABEL_NAMESPACE, LABEL_WORKLOAD, LABEL_WORKLOAD_TYPE)
LABEL_REPLICA_TYPE: Final = "replica_type"
LABEL_ACTION: Final = "action"
LABEL_RESULT: Final = "result"
LABEL_ERROR_TYPE: Final = "error_type"
LABEL_PDB_NAME: Final = "pdb_name"
LABEL_OPERATION: Final = "operation"
LABEL_RESOURCE_KIND: Final = "resource_kind"
LABEL_MUTATION_TYPE: Final = "mutation_type"
LABEL_CONTROLLER_NAME: Final = "controller_name"


class ReconcileAction(StrEnum):
    """`action` of spotalis_reconciliations_total."""

    REBALANCE = "rebalance"
    FALLBACK = "fallback"
    FLOOR_REPAIR = "floor_repair"


class ReconcileResult(StrEnum):
    """`result` of spotalis_reconciliations_total."""

    SUCCESS = "success"
    ERROR = "error"
    BLOCKED = "blocked"
    DRY_RUN = "dry_run"


class ReconcileErrorType(StrEnum):
    """`error_type` of spotalis_reconciliation_errors_total."""

    RECONCILIATION = "reconciliation"
    CONFIGURATION = "configuration"
    API = "api"


class WebhookResult(StrEnum):
    """`result` of spotalis_webhook_requests_total (upstream always wrote `allowed`)."""

    MUTATED = "mutated"
    SKIPPED = "skipped"
    ERROR = "error"


class ConfigReloadResult(StrEnum):
    """`result` of spotalis_config_reload_total (spec 3.13)."""

    SUCCESS = "success"
    ERROR = "error"
    RESTART_REQUIRED = "restart_required"


# --- 7.2 events -------------------------------------------------------------------------------------------
EVENT_COMPONENT: Final = "spotalis-controller"
EVENT_DEDUP_SECONDS: Final = 600


class EventReason(StrEnum):
    # Warning
    CONFIGURATION_ERROR = "ConfigurationError"
    SPOT_FALLBACK = "SpotFallback"
    FLOOR_REPAIR = "FloorRepair"
    REBALANCE_BLOCKED_BY_PDB = "RebalanceBlockedByPDB"
    # Normal
    REBALANCE_EVICTION = "RebalanceEviction"
    SPOT_RESTORED = "SpotRestored"


WARNING_EVENTS: Final = frozenset(
    {
        EventReason.CONFIGURATION_ERROR,
        EventReason.SPOT_FALLBACK,
        EventReason.FLOOR_REPAIR,
        EventReason.REBALANCE_BLOCKED_BY_PDB,
    }
)
NORMAL_EVENTS: Final = frozenset({EventReason.REBALANCE_EVICTION, EventReason.SPOT_RESTORED})

# --- 7.2 logs: upstream field names and messages [compat] --------------------------------------------------
LOG_CURRENT_SPOT: Final = "current_spot"
LOG_DESIRED_SPOT: Final = "desired_spot"
LOG_CURRENT_ON_DEMAND: Final = "current_on_demand"
LOG_DESIRED_ON_DEMAND: Final = "desired_on_demand"
LOG_SPOT_PERCENTAGE: Final = "spot_percentage"
LOG_MIN_ON_DEMAND: Final = "min_on_demand"
LOG_PDB: Final = "pdb"
LOG_DISRUPTIONS_ALLOWED: Final = "disruptions_allowed"

MSG_REBALANCING: Final = "Rebalancing deployment pods"
MSG_EVICTING: Final = "Evicting pod for rebalancing"
MSG_BLOCKED_BY_PDB: Final = "Rebalancing blocked by PDB"
MSG_OUTSIDE_WINDOW: Final = "Outside disruption window, deferring rebalancing"
MSG_IN_COOLDOWN: Final = "In cooldown period, skipping rebalancing"
