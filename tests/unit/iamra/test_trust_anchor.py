"""export-ca's pure half: the CA out of the cert-manager Secret, checked, and the AWS CLI command."""

from __future__ import annotations

import base64
import json
import shlex

import pytest
import trustme

from kubewright.iamra.trust_anchor import CaExportError, create_trust_anchor_command, workload_ca_from_secret

pytestmark = pytest.mark.unit


def secret_with(pem: bytes | str, key: str = "tls.crt") -> dict[str, object]:
    raw = pem.encode() if isinstance(pem, str) else pem
    return {"apiVersion": "v1", "kind": "Secret", "data": {key: base64.b64encode(raw).decode()}}


def test_ca_certificate_is_exported() -> None:
    ca = trustme.CA(organization_name="iamra-injector workload CA")
    exported = workload_ca_from_secret(secret_with(ca.cert_pem.bytes()), "cert-manager/iamra-workload-ca")
    assert exported.pem == ca.cert_pem.bytes().decode()
    assert "iamra-injector workload CA" in exported.subject
    assert exported.not_after.tzinfo is not None


def test_leaf_certificate_is_refused() -> None:
    leaf = trustme.CA().issue_cert("pod.example").cert_chain_pems[0].bytes()
    with pytest.raises(CaExportError, match="is not a CA certificate"):
        workload_ca_from_secret(secret_with(leaf), "ns/name")


@pytest.mark.parametrize(
    ("secret", "fragment"),
    [
        ({"data": {"ca.crt": "eA=="}}, "has no tls.crt (keys: ca.crt)"),
        ({}, "has no tls.crt (keys: none)"),
        ({"data": {"tls.crt": "%%%"}}, "is not a PEM certificate"),
        (secret_with("not a certificate"), "is not a PEM certificate"),
    ],
)
def test_unusable_secrets_name_the_problem(secret: dict[str, object], fragment: str) -> None:
    with pytest.raises(CaExportError) as caught:
        workload_ca_from_secret(secret, "cert-manager/iamra-workload-ca")
    assert "Secret cert-manager/iamra-workload-ca" in str(caught.value)
    assert fragment in str(caught.value)


def test_command_inlines_the_pem_as_json() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB'x\n-----END CERTIFICATE-----\n"
    command = create_trust_anchor_command(pem, "iamra-injector")
    argv = shlex.split(command)
    assert argv[:6] == [
        "aws",
        "rolesanywhere",
        "create-trust-anchor",
        "--name",
        "iamra-injector",
        "--enabled",
    ]
    assert argv[6] == "--source"
    assert json.loads(argv[7]) == {
        "sourceType": "CERTIFICATE_BUNDLE",
        "sourceData": {"x509CertificateData": pem},
    }
