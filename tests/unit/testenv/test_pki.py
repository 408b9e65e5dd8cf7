from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubewright.testenv import pki

pytestmark = pytest.mark.unit


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def signed_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    leaf.verify_directly_issued_by(ca)
    return True


@pytest.fixture(scope="module")
def cluster_pki(tmp_path_factory: pytest.TempPathFactory) -> pki.ClusterPKI:
    return pki.generate(tmp_path_factory.mktemp("pki"))


def test_two_trust_roots_are_kept_apart(cluster_pki: pki.ClusterPKI) -> None:
    ca, front = load(cluster_pki.ca.cert), load(cluster_pki.front_proxy_ca.cert)
    assert signed_by(load(cluster_pki.apiserver.cert), ca)
    assert signed_by(load(cluster_pki.admin.cert), ca)
    assert signed_by(load(cluster_pki.front_proxy_client.cert), front)
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography raises a bare ValueError on mismatch
        load(cluster_pki.front_proxy_client.cert).verify_directly_issued_by(ca)


def test_admin_is_system_masters(cluster_pki: pki.ClusterPKI) -> None:
    subject = load(cluster_pki.admin.cert).subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"


def test_apiserver_cert_names_loopback_and_service(cluster_pki: pki.ClusterPKI) -> None:
    sans = (
        load(cluster_pki.apiserver.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(i) for i in sans.get_values_for_type(x509.IPAddress)]


def test_private_keys_are_not_world_readable(cluster_pki: pki.ClusterPKI) -> None:
    for path in (cluster_pki.ca.key, cluster_pki.admin.key, cluster_pki.service_account_key):
        assert path.stat().st_mode & 0o077 == 0, path


def test_issued_serving_and_client_certs(cluster_pki: pki.ClusterPKI, tmp_path: Path) -> None:
    serving = load(pki.issue_serving_cert(tmp_path, cluster_pki.ca, "hook", ("hook.ns.svc",)).cert)
    assert signed_by(serving, load(cluster_pki.ca.cert))
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["hook.ns.svc"]
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]

    client = load(pki.issue_client_cert(tmp_path, cluster_pki.ca, "jane", ("devs",)).cert)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jane"
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "devs"
