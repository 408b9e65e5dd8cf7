"""Spec 3.3: the effective injection settings of one pod and their sha256, the `injection-hash`.

Precedence is annotation > chart value > default (the chart's defaults are the config's defaults). The
hash covers a canonical JSON object with every key present (`null` when unset), sorted keys, compact
separators and UTF-8 without escaping, so the same inputs give the same bytes on every replica and
release: operators can tell from the annotation alone whether two pods were injected alike, and a
changed chart value shows up as a changed hash on new pods.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubewright.iamra import constants as c
from kubewright.iamra.config import IamraConfig
from kubewright.iamra.constants import SidecarMode
from kubewright.iamra.validate import PodAnnotations


@dataclass(frozen=True)
class CsiCertificate:
    """A per-pod certificate from cert-manager's csi-driver; the key never leaves the node."""

    issuer_name: str
    issuer_kind: str
    common_name: str
    duration: str
    renew_before: str

    def canonical(self) -> dict[str, Any]:
        return {
            "mode": "csi",
            "issuerName": self.issuer_name,
            "issuerKind": self.issuer_kind,
            "commonName": self.common_name,
            "duration": self.duration,
            "renewBefore": self.renew_before,
        }


@dataclass(frozen=True)
class SecretCertificate:
    """A Secret the user provides with `tls.crt`/`tls.key`; the webhook never reads or creates it."""

    secret_name: str

    def canonical(self) -> dict[str, Any]:
        return {"mode": "secret", "secretName": self.secret_name}


@dataclass(frozen=True)
class EffectiveConfig:
    """Everything that decides what a pod gets injected (and nothing that does not, e.g. its name)."""

    webhook_version: str
    trust_anchor_arn: str
    profile_arn: str
    role_arn: str
    signing_region: str
    app_region: str | None
    session_duration_seconds: int
    session_name: str | None
    log_level: str
    audience: str | None
    port: int
    image: str
    image_pull_policy: str
    sidecar_mode: SidecarMode
    certificate: CsiCertificate | SecretCertificate
    skip_containers: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        return {
            "schema": c.CANONICAL_SCHEMA_VERSION,
            "webhookVersion": self.webhook_version,
            "trustAnchorArn": self.trust_anchor_arn,
            "profileArn": self.profile_arn,
            "roleArn": self.role_arn,
            "signingRegion": self.signing_region,
            "appRegion": self.app_region,
            "sessionDurationSeconds": self.session_duration_seconds,
            "sessionName": self.session_name,
            "logLevel": self.log_level,
            "audience": self.audience,
            "port": self.port,
            "image": self.image,
            "imagePullPolicy": self.image_pull_policy,
            "sidecarMode": self.sidecar_mode.value,
            "certificate": self.certificate.canonical(),
            "skipContainers": list(self.skip_containers),
        }

    def canonical_json(self) -> bytes:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )

    def injection_hash(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()


def effective_config(
    annotations: PodAnnotations, config: IamraConfig, mode: SidecarMode, webhook_version: str
) -> EffectiveConfig:
    """Resolve annotation > chart value > default for one validated pod."""
    sidecar = config.sidecar
    return EffectiveConfig(
        webhook_version=webhook_version,
        trust_anchor_arn=config.trustAnchorArn,
        profile_arn=annotations.profile_arn,
        role_arn=annotations.role_arn,
        # The helper signs in the trust anchor's region; the annotation only tells the app's SDK.
        signing_region=config.region,
        app_region=annotations.region,
        session_duration_seconds=annotations.token_duration_seconds or sidecar.tokenDurationSeconds,
        session_name=annotations.session_name,
        log_level=annotations.log_level or sidecar.logLevel,
        audience=annotations.audience,
        port=sidecar.port,
        image=sidecar.image,
        image_pull_policy=sidecar.pullPolicy,
        sidecar_mode=mode,
        certificate=_certificate(annotations, config),
        skip_containers=tuple(sorted(set(annotations.skip_containers))),
    )


def _certificate(annotations: PodAnnotations, config: IamraConfig) -> CsiCertificate | SecretCertificate:
    if annotations.certificate_secret is not None:
        return SecretCertificate(annotations.certificate_secret)
    workload = config.workloadCertificate
    return CsiCertificate(
        issuer_name=workload.issuerName,
        issuer_kind=workload.issuerKind,
        common_name=workload.commonName,
        duration=workload.duration,
        renew_before=workload.renewBefore,
    )
