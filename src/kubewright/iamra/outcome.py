"""What the decision pipeline answers: skip, deny or inject, each with its warnings and metric labels.

Pure values, so the server, the offline `mutate` preview and the benchmark turn the same answer into an
AdmissionReview response, a metric sample and a log line without re-deciding anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubewright.iamra import constants as c
from kubewright.iamra.constants import Reason, Result, SidecarMode, WarningKind


@dataclass(frozen=True)
class Notice:
    """One warning for the pod's creator (kubectl prints it) and its metric `kind`."""

    kind: WarningKind
    text: str


def notice(kind: WarningKind, detail: str) -> Notice:
    """A warning with the `iamra: ` prefix, clipped to 120 characters: API servers truncate or drop longer
    warnings, and a container name or annotation key can be long."""
    text = c.WARNING_PREFIX + detail
    if len(text) > c.WARNING_MAX_CHARS:
        text = text[: c.WARNING_MAX_CHARS - 3] + "..."
    return Notice(kind, text)


@dataclass(frozen=True)
class Skipped:
    """Allowed without a patch (spec 3.1 step 2)."""

    reason: Reason
    notices: tuple[Notice, ...] = ()

    @property
    def result(self) -> Result:
        return Result.SKIPPED


@dataclass(frozen=True)
class Denied:
    """Rejected; `messages` are every problem found (3.2 collects all), joined by `; ` for the user."""

    code: int
    reason: Reason
    messages: tuple[str, ...]
    notices: tuple[Notice, ...] = ()

    @property
    def result(self) -> Result:
        return Result.DENIED

    @property
    def message(self) -> str:
        return "; ".join(self.messages)


@dataclass(frozen=True)
class Injected:
    """Allowed with `patch` (RFC 6902, `add` ops only), which turns the request's pod into `pod`.

    `pod` and the op values share objects: treat both as read-only.
    """

    patch: list[dict[str, Any]]
    pod: dict[str, Any]
    injection_hash: str
    mode: SidecarMode
    notices: tuple[Notice, ...] = field(default=())

    @property
    def result(self) -> Result:
        return Result.INJECTED

    @property
    def reason(self) -> Reason:
        return Reason.NATIVE if self.mode is SidecarMode.NATIVE else Reason.LEGACY


Outcome = Skipped | Denied | Injected


def warning_texts(outcome: Outcome) -> list[str]:
    return [item.text for item in outcome.notices]
