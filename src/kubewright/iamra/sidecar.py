"""Spec 2.2 / 3.4: the credential-helper container and the workload-certificate volume it mounts.

The helper gets one argv element per value and no `command` (the image's entrypoint is
`aws_signing_helper`), so no annotation value is ever parsed by a shell. It has no ports or probes: it
listens on loopback, which the kubelet cannot reach, and the distroless image has nothing to exec. The
volume is mounted read-only into the sidecar only, so application containers never see the private key.
"""

from __future__ import annotations

from typing import Any

from kubewright.iamra import constants as c
from kubewright.iamra.config import IamraConfig
from kubewright.iamra.constants import SidecarMode
from kubewright.iamra.effective import CsiCertificate, EffectiveConfig
from kubewright.iamra.patch import json_copy


def sidecar_args(effective: EffectiveConfig, mount_path: str) -> list[str]:
    """`serve` flags in the fixed order of spec 2.2 (`cmd/credentials.go`, `cmd/serve.go`)."""
    args = [
        c.SIDECAR_SUBCOMMAND,
        "--certificate", f"{mount_path}/{c.CERTIFICATE_FILE}",
        "--private-key", f"{mount_path}/{c.PRIVATE_KEY_FILE}",
        "--trust-anchor-arn", effective.trust_anchor_arn,
        "--profile-arn", effective.profile_arn,
        "--role-arn", effective.role_arn,
        "--region", effective.signing_region,
        "--session-duration", str(effective.session_duration_seconds),
        "--port", str(effective.port),
    ]  # fmt: skip
    if effective.session_name is not None:
        args += ["--role-session-name", effective.session_name]
    if effective.log_level == "debug":  # the helper has no level flag, only --debug
        args.append("--debug")
    return args


def build_sidecar(effective: EffectiveConfig, config: IamraConfig) -> dict[str, Any]:
    """The helper container; native mode adds `restartPolicy: Always` (starts first, lets Jobs finish)."""
    mount_path = config.workloadCertificate.mountPath
    container: dict[str, Any] = {
        "name": c.SIDECAR_NAME,
        "image": effective.image,
        "imagePullPolicy": effective.image_pull_policy,
        "args": sidecar_args(effective, mount_path),
    }
    resources = config.sidecar.container_resources
    if resources:
        container["resources"] = {kind: dict(amounts) for kind, amounts in resources.items()}
    container["securityContext"] = json_copy(config.sidecar.container_security_context)
    container["terminationMessagePolicy"] = c.TERMINATION_MESSAGE_POLICY
    container["volumeMounts"] = [{"name": c.VOLUME_NAME, "mountPath": mount_path, "readOnly": True}]
    if effective.sidecar_mode is SidecarMode.NATIVE:
        container["restartPolicy"] = c.NATIVE_SIDECAR_RESTART_POLICY
    return container


def build_volume(effective: EffectiveConfig, config: IamraConfig) -> dict[str, Any]:
    """csi: a per-pod certificate from cert-manager's csi-driver, renewed in place; secret: the named
    Secret holding `tls.crt`/`tls.key` (aws-samples pattern), which the webhook never reads."""
    certificate = effective.certificate
    if not isinstance(certificate, CsiCertificate):
        return {
            "name": c.VOLUME_NAME,
            "secret": {"secretName": certificate.secret_name, "defaultMode": c.SECRET_VOLUME_DEFAULT_MODE},
        }
    workload = config.workloadCertificate
    prefix = c.CSI_ATTRIBUTE_PREFIX
    return {
        "name": c.VOLUME_NAME,
        "csi": {
            "driver": c.CSI_DRIVER,
            "readOnly": True,
            "volumeAttributes": {
                f"{prefix}issuer-name": certificate.issuer_name,
                f"{prefix}issuer-kind": certificate.issuer_kind,
                f"{prefix}issuer-group": c.CERT_MANAGER_GROUP,
                f"{prefix}common-name": certificate.common_name,
                f"{prefix}duration": certificate.duration,
                f"{prefix}renew-before": certificate.renew_before,
                f"{prefix}key-usages": workload.keyUsages,
                f"{prefix}certificate-file": c.CERTIFICATE_FILE,
                f"{prefix}privatekey-file": c.PRIVATE_KEY_FILE,
                f"{prefix}ca-file": c.CA_FILE,
                f"{prefix}fs-group": str(workload.fsGroup),
            },
        },
    }
