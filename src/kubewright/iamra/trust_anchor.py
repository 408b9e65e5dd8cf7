"""Spec 3.7: the workload CA is the trust anchor to register in AWS; `export-ca` hands it over.

Pure helpers for the command: take the CA out of the cert-manager Secret (checking it really is a CA
certificate, because registering a pod's leaf or a truncated PEM gives a trust anchor that never
validates anything) and print the `aws rolesanywhere create-trust-anchor` call with the PEM inlined as
JSON, so it runs as printed without a shell substitution or a temporary file.
"""

from __future__ import annotations

import base64
import binascii
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from kubewright.iamra import constants as c


class CaExportError(ValueError):
    """The Secret does not hold a usable CA certificate; the message names the Secret and the problem."""


@dataclass(frozen=True)
class WorkloadCa:
    pem: str
    subject: str
    not_after: datetime


def workload_ca_from_secret(secret: Mapping[str, Any], where: str) -> WorkloadCa:
    """The CA certificate in `tls.crt` of the Secret `where` (namespace/name) as PEM, checked."""
    data = secret.get("data") or {}
    encoded = data.get(c.CERTIFICATE_FILE) if isinstance(data, Mapping) else None
    if not isinstance(encoded, str) or not encoded:
        keys = ", ".join(sorted(str(key) for key in data)) if isinstance(data, Mapping) else ""
        raise CaExportError(f"Secret {where} has no {c.CERTIFICATE_FILE} (keys: {keys or 'none'})")
    try:
        pem = base64.b64decode(encoded, validate=True).decode("ascii")
        certificates = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise CaExportError(
            f"Secret {where}: {c.CERTIFICATE_FILE} is not a PEM certificate ({err})"
        ) from None
    ca = certificates[0]
    try:
        is_ca = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CaExportError(
            f"Secret {where}: {c.CERTIFICATE_FILE} is not a CA certificate "
            f"(subject {ca.subject.rfc4514_string()}); export the workload CA, not a leaf"
        )
    if not pem.endswith("\n"):
        pem += "\n"
    return WorkloadCa(pem=pem, subject=ca.subject.rfc4514_string(), not_after=ca.not_valid_after_utc)


def create_trust_anchor_command(pem: str, name: str) -> str:
    """The AWS CLI call registering `pem` as a trust anchor named `name`, ready to paste."""
    source = json.dumps(
        {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": {"x509CertificateData": pem}},
        separators=(",", ":"),
    )
    return (
        f"aws rolesanywhere create-trust-anchor --name {shlex.quote(name)} --enabled "
        f"--source {shlex.quote(source)}"
    )
