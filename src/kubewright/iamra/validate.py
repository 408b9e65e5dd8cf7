"""Spec 3.2: check an annotated pod's annotations and spec, collecting every problem before answering.

Why collect all: a denial reaches the creator as one kubectl error (or one ReplicaSet `FailedCreate`
event); reporting one problem per attempt turns three typos into three deploys. Each message names the
annotation (or pod field), quotes the trimmed value and says what is allowed, e.g.
`iamra.aws/token-duration: "15m" must be whole seconds in [900, 43200]`.

What is rejected and why it matters at run time:
- ARNs, region, session name: the helper would exit on start with a pod that looks healthy until used;
- a profile outside the trust anchor's partition/region: the helper fails every `CreateSession`;
- `hostNetwork`: the loopback credential endpoint would be shared with every process on the node;
- a `containerPort` equal to the helper port, an existing `iamra-workload-cert` volume: the pod could
  not start, or would start with someone else's key material;
- Windows: the helper image is Linux only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from kubewright.iamra import constants as c
from kubewright.iamra.arns import is_region, is_role_arn, profile_placement
from kubewright.iamra.config import IamraConfig
from kubewright.iamra.constants import Reason, WarningKind
from kubewright.iamra.outcome import Notice, notice
from kubewright.iamra.pod import PodFacts

_SESSION_NAME: Final = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_WHOLE_SECONDS: Final = re.compile(r"[0-9]{1,9}")
_DNS1123_LABEL: Final = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_DNS1123_SUBDOMAIN: Final = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*", re.ASCII
)
_SHOWN_VALUE_CHARS: Final = 100
T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """One reason to deny, with its metric label."""

    reason: Reason
    message: str


@dataclass(frozen=True)
class PodAnnotations:
    """The pod's iamra annotations, trimmed and checked; optional ones are None when absent."""

    role_arn: str
    profile_arn: str
    session_name: str | None = None
    token_duration_seconds: int | None = None
    region: str | None = None
    log_level: str | None = None
    audience: str | None = None
    skip_containers: tuple[str, ...] = ()
    certificate_secret: str | None = None


@dataclass(frozen=True)
class Validation:
    """`annotations` is set only when `problems` is empty."""

    annotations: PodAnnotations | None
    problems: tuple[Problem, ...]
    notices: tuple[Notice, ...]


@dataclass
class _Findings:
    problems: list[Problem] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def invalid(self, annotation: str, value: str, rule: str) -> None:
        self.problems.append(Problem(Reason.INVALID_ANNOTATION, f"{annotation}: {quote(value)} {rule}"))


def quote(value: str) -> str:
    """The value as a JSON string (control characters escaped), cut to keep messages readable."""
    shown = value if len(value) <= _SHOWN_VALUE_CHARS else value[:_SHOWN_VALUE_CHARS] + "..."
    return json.dumps(shown, ensure_ascii=False)


def validate(annotations: Mapping[str, str], facts: PodFacts, config: IamraConfig) -> Validation:
    """Check every rule of spec 3.2; the caller has already seen both required annotations non-blank."""
    found = _Findings()
    role_arn = _role_arn(annotations[c.ROLE_ARN_ANNOTATION].strip(), found)
    profile_arn = _profile_arn(annotations[c.PROFILE_ARN_ANNOTATION].strip(), config, found)
    session_name = _optional(annotations, c.SESSION_NAME_ANNOTATION, _session_name, found)
    duration = _optional(annotations, c.TOKEN_DURATION_ANNOTATION, _token_duration, found)
    region = _optional(annotations, c.REGION_ANNOTATION, _region, found)
    log_level = _optional(annotations, c.LOG_LEVEL_ANNOTATION, _log_level, found)
    audience = _optional(annotations, c.AUDIENCE_ANNOTATION, _audience, found)
    skip = _optional(annotations, c.SKIP_CONTAINERS_ANNOTATION, _skip_containers, found)
    secret = _optional(annotations, c.CERTIFICATE_SECRET_ANNOTATION, _certificate_secret, found)
    if config.workloadCertificate.mode == "secret" and c.CERTIFICATE_SECRET_ANNOTATION not in annotations:
        found.problems.append(
            Problem(
                Reason.INVALID_ANNOTATION,
                f'{c.CERTIFICATE_SECRET_ANNOTATION}: required because workloadCertificate.mode is "secret"',
            )
        )
    _check_pod(facts, config, found)
    _notice_unknown_annotations(annotations, found)
    if skip:
        _notice_unknown_skipped(skip, facts, found)
    if found.problems or role_arn is None or profile_arn is None:
        return Validation(None, tuple(found.problems), tuple(found.notices))
    parsed = PodAnnotations(
        role_arn=role_arn,
        profile_arn=profile_arn,
        session_name=session_name,
        token_duration_seconds=duration,
        region=region,
        log_level=log_level,
        audience=audience,
        skip_containers=skip or (),
        certificate_secret=secret,
    )
    return Validation(parsed, (), tuple(found.notices))


def _optional(
    annotations: Mapping[str, str],
    key: str,
    check: Callable[[str, _Findings], T | None],
    found: _Findings,
) -> T | None:
    """Absent -> None; present (even empty: that is an error, not "unset") -> the checked value."""
    if key not in annotations:
        return None
    return check(annotations[key].strip(), found)


def _role_arn(value: str, found: _Findings) -> str | None:
    if is_role_arn(value):
        return value
    found.invalid(
        c.ROLE_ARN_ANNOTATION,
        value,
        "must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/[<path>/]<name>)",
    )
    return None


def _profile_arn(value: str, config: IamraConfig, found: _Findings) -> str | None:
    placement = profile_placement(value)
    if placement is None:
        found.invalid(
            c.PROFILE_ARN_ANNOTATION,
            value,
            "must be an IAM Roles Anywhere profile ARN "
            "(arn:aws:rolesanywhere:<region>:<12-digit account>:profile/<lowercase uuid>)",
        )
        return None
    if (placement.partition, placement.region) != (config.partition, config.region):
        found.invalid(
            c.PROFILE_ARN_ANNOTATION,
            value,
            f"must be in the trust anchor's partition and region ({config.partition}, {config.region})",
        )
        return None
    return value


def _session_name(value: str, found: _Findings) -> str | None:
    if _SESSION_NAME.fullmatch(value):
        return value
    found.invalid(c.SESSION_NAME_ANNOTATION, value, "must be 2-64 characters from letters, digits and +=,.@-")
    return None


def _token_duration(value: str, found: _Findings) -> int | None:
    # At most 9 digits before int(): a 5,000-digit value must not reach Python's int-size guard.
    if _WHOLE_SECONDS.fullmatch(value):
        seconds = int(value)
        if c.MIN_TOKEN_DURATION_SECONDS <= seconds <= c.MAX_TOKEN_DURATION_SECONDS:
            return seconds
    found.invalid(
        c.TOKEN_DURATION_ANNOTATION,
        value,
        f"must be whole seconds in [{c.MIN_TOKEN_DURATION_SECONDS}, {c.MAX_TOKEN_DURATION_SECONDS}]",
    )
    return None


def _region(value: str, found: _Findings) -> str | None:
    if is_region(value):
        return value
    found.invalid(c.REGION_ANNOTATION, value, "must be an AWS region such as us-east-1")
    return None


def _log_level(value: str, found: _Findings) -> str | None:
    level = value.lower()
    if level in c.LOG_LEVELS:
        return level
    found.invalid(c.LOG_LEVEL_ANNOTATION, value, f"must be one of {', '.join(c.LOG_LEVELS)}")
    return None


def _audience(value: str, found: _Findings) -> str | None:
    if not value:
        found.invalid(c.AUDIENCE_ANNOTATION, value, "must not be empty")
        return None
    # Kept for compatibility with the upstream design and hashed, but IAM Roles Anywhere has no audience.
    found.notices.append(
        notice(
            WarningKind.AUDIENCE, f"{c.AUDIENCE_ANNOTATION} has no effect: IAM Roles Anywhere has no audience"
        )
    )
    return value


def _skip_containers(value: str, found: _Findings) -> tuple[str, ...] | None:
    names = [name.strip() for name in value.split(",")]
    names = [name for name in names if name]
    if not names:
        found.invalid(
            c.SKIP_CONTAINERS_ANNOTATION, value, "must name at least one container (comma-separated)"
        )
        return None
    bad = [name for name in names if not _DNS1123_LABEL.fullmatch(name)]
    for name in bad:
        found.invalid(
            c.SKIP_CONTAINERS_ANNOTATION,
            name,
            "must be a container name (DNS-1123 label: lowercase letters, digits, '-', at most 63)",
        )
    return None if bad else tuple(dict.fromkeys(names))


def _certificate_secret(value: str, found: _Findings) -> str | None:
    if len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value):
        return value
    found.invalid(c.CERTIFICATE_SECRET_ANNOTATION, value, "must be a Secret name (DNS-1123 subdomain)")
    return None


def _check_pod(facts: PodFacts, config: IamraConfig, found: _Findings) -> None:
    port = config.sidecar.port
    if facts.host_network:
        found.problems.append(
            Problem(
                Reason.HOST_NETWORK,
                f"spec.hostNetwork: true is not allowed: the credential endpoint 127.0.0.1:{port} "
                "would be shared with the node",
            )
        )
    for field_name, containers in (
        ("containers", facts.containers),
        ("initContainers", facts.init_containers),
    ):
        for container in containers:
            if port in container.container_ports:
                found.problems.append(
                    Problem(
                        Reason.PORT_CONFLICT,
                        f"spec.{field_name}[{container.name}].ports: containerPort {port} is the credential "
                        "helper's port (sidecar.port)",
                    )
                )
    windows = "windows"
    if facts.os_name is not None and facts.os_name.lower() == windows:
        found.problems.append(
            Problem(
                Reason.WINDOWS,
                f"spec.os.name: {quote(facts.os_name)} is not supported: the helper is Linux only",
            )
        )
    if facts.node_selector_os is not None and facts.node_selector_os.lower() == windows:
        found.problems.append(
            Problem(
                Reason.WINDOWS,
                f"spec.nodeSelector.{c.WINDOWS_OS_LABEL}: {quote(facts.node_selector_os)} is not supported: "
                "the helper is Linux only",
            )
        )
    if c.VOLUME_NAME in facts.volume_names:
        found.problems.append(
            Problem(Reason.VOLUME_CONFLICT, f'spec.volumes: a volume named "{c.VOLUME_NAME}" already exists')
        )


def _notice_unknown_annotations(annotations: Mapping[str, str], found: _Findings) -> None:
    for key in annotations:
        if key.startswith(c.ANNOTATION_PREFIX) and key not in c.KNOWN_ANNOTATIONS:
            found.notices.append(notice(WarningKind.UNKNOWN_ANNOTATION, f"unknown annotation {key} ignored"))


def _notice_unknown_skipped(skip: tuple[str, ...], facts: PodFacts, found: _Findings) -> None:
    present = {container.name for container in (*facts.containers, *facts.init_containers)}
    for name in skip:
        if name not in present:
            found.notices.append(
                notice(
                    WarningKind.UNKNOWN_SKIP_CONTAINER,
                    f"{c.SKIP_CONTAINERS_ANNOTATION} names no container of this pod: {quote(name)}",
                )
            )
