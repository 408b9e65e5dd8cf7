"""Spec 3.6 step 6: admissions decided but not yet visible in the pod cache.

Pure: no I/O; time is passed in. Between the webhook's answer and the informer delivering the new pod,
the cache does not count it; a burst of pod creations therefore sees the same counts for every pod.
Upstream wrote an admission tracker but never wired it, so a 10-pod burst at 70 % spot landed 5/5.
Each decision is recorded here, per group, until the pod shows up in the cache carrying its
`spotalis.io/admission-id` (then the cache counts it) or the record's TTL passes (the create failed, or
another replica's informer is slow). Dry-run admissions are never recorded: no pod will follow.

Records are per process: several webhook replicas do not see each other's (spec 4; the controller
corrects the skew).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubewright.spotalis.classify import Capacity

DEFAULT_TTL = 30.0  # webhook.inflightTTL


@dataclass(frozen=True, slots=True)
class InflightRecord:
    group: str
    uid: str  # the AdmissionReview request.uid, echoed in the pod's admission-id annotation
    capacity: Capacity
    expires: float


class InflightTracker:
    """Live in-flight records by group and by request uid."""

    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self._by_uid: dict[str, InflightRecord] = {}
        self._by_group: dict[str, dict[str, InflightRecord]] = {}
        self._ttl = DEFAULT_TTL
        self.ttl = ttl

    @property
    def ttl(self) -> float:
        return self._ttl

    @ttl.setter
    def ttl(self, value: float) -> None:
        """New records take the new TTL (config reload); existing ones keep their expiry."""
        if not value > 0:
            raise ValueError(f"webhook.inflightTTL: must be > 0 seconds, got {value}")
        self._ttl = value

    def __len__(self) -> int:
        return len(self._by_uid)

    def __contains__(self, uid: object) -> bool:
        return uid in self._by_uid

    def get(self, uid: str) -> InflightRecord | None:
        return self._by_uid.get(uid)

    def record(self, group: str, uid: str, capacity: Capacity, now: float) -> InflightRecord:
        """Record one admission decision, live until `now + ttl` or until its pod is seen."""
        self.seen(uid)
        rec = InflightRecord(group, uid, capacity, now + self._ttl)
        self._by_uid[uid] = rec
        self._by_group.setdefault(group, {})[uid] = rec
        return rec

    def seen(self, uid: str | None) -> InflightRecord | None:
        """The pod with admission-id `uid` is in the cache: drop its record (the cache counts it now)."""
        if not uid:
            return None
        rec = self._by_uid.pop(uid, None)
        if rec is not None:
            self._discard(rec)
        return rec

    def pending(self, group: str, now: float) -> tuple[int, int]:
        """(pS, pO): live records of `group`; expired ones are dropped on the way."""
        records = self._by_group.get(group)
        if not records:
            return 0, 0
        spot = on_demand = 0
        for rec in list(records.values()):
            if rec.expires <= now:
                del self._by_uid[rec.uid]
                self._discard(rec)
            elif rec.capacity is Capacity.SPOT:
                spot += 1
            else:
                on_demand += 1
        return spot, on_demand

    def expire(self, now: float) -> int:
        """Drop every expired record (a periodic sweep for groups no admission asks about again)."""
        expired = [rec for rec in self._by_uid.values() if rec.expires <= now]
        for rec in expired:
            del self._by_uid[rec.uid]
            self._discard(rec)
        return len(expired)

    def _discard(self, rec: InflightRecord) -> None:
        records = self._by_group[rec.group]
        del records[rec.uid]
        if not records:
            del self._by_group[rec.group]
