"""Certificates and keys for the local control plane.

Two trust roots, as in a kubeadm cluster: the cluster CA (API server serving cert, admin and component
client certs, KWOK's kubelet-serving cert) and the front-proxy CA, whose client cert the aggregator
presents to aggregated API servers with the requestheader identity headers. Keeping them apart is what
lets an aggregated server tell proxied requests from direct ones, so tests exercise the real check.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
FRONT_PROXY_CLIENT_NAME = "front-proxy-client"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair
    kubelet_serving: KeyPair
    service_account_key: Path
    service_account_pub: Path


class _Authority:
    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        usage: x509.ObjectIdentifier,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        return _sign_leaf(self.key, self.cert, x509.Name(attrs), usage, sans)


def _write_pair(
    directory: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> KeyPair:
    pair = KeyPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair


def generate(directory: Path) -> ClusterPKI:
    """Write a fresh cluster PKI into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    server = ExtendedKeyUsageOID.SERVER_AUTH
    client = ExtendedKeyUsageOID.CLIENT_AUTH

    ca = _Authority("kubewright-ca")
    front = _Authority("kubewright-front-proxy-ca")
    apiserver = ca.issue(
        "kube-apiserver",
        dns_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", "10.96.0.1"),
        usage=server,
    )
    admin = ca.issue("kubewright-admin", organizations=("system:masters",), usage=client)
    kubelet = ca.issue("kwok-kubelet", dns_names=("localhost",), ips=("127.0.0.1",), usage=server)
    proxy_client = front.issue(FRONT_PROXY_CLIENT_NAME, usage=client)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_path = directory / "sa.key"
    sa_pub_path = directory / "sa.pub"
    sa_key_path.write_bytes(
        sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    sa_key_path.chmod(0o600)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ClusterPKI(
        ca=_write_pair(directory, "ca", ca.key, ca.cert),
        apiserver=_write_pair(directory, "apiserver", *apiserver),
        admin=_write_pair(directory, "admin", *admin),
        front_proxy_ca=_write_pair(directory, "front-proxy-ca", front.key, front.cert),
        front_proxy_client=_write_pair(directory, "front-proxy-client", *proxy_client),
        kubelet_serving=_write_pair(directory, "kubelet", *kubelet),
        service_account_key=sa_key_path,
        service_account_pub=sa_pub_path,
    )


def load(directory: Path) -> ClusterPKI:
    """The paths `generate` wrote into `directory`."""

    def pair(name: str) -> KeyPair:
        return KeyPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")

    return ClusterPKI(
        ca=pair("ca"),
        apiserver=pair("apiserver"),
        admin=pair("admin"),
        front_proxy_ca=pair("front-proxy-ca"),
        front_proxy_client=pair("front-proxy-client"),
        kubelet_serving=pair("kubelet"),
        service_account_key=directory / "sa.key",
        service_account_pub=directory / "sa.pub",
    )


def _load_authority(ca_pair: KeyPair) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key = serialization.load_pem_private_key(ca_pair.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca_pair.key}: expected an EC private key (written by kubewright.testenv.pki)")
    return ca_key, x509.load_pem_x509_certificate(ca_pair.cert.read_bytes())


def _sign_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def issue_serving_cert(directory: Path, ca_pair: KeyPair, name: str, dns_names: tuple[str, ...]) -> KeyPair:
    """A serving cert (plus 127.0.0.1) signed by `ca_pair`, for loopback webhook or API servers in tests.

    For a Service reference the API server verifies the name `<service>.<namespace>.svc`, so callers
    registering a service-backed webhook or APIService must include it in `dns_names`.
    """
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    key, cert = _sign_leaf(*_load_authority(ca_pair), subject, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    directory.mkdir(parents=True, exist_ok=True)
    return _write_pair(directory, name, key, cert)


def issue_client_cert(directory: Path, ca_pair: KeyPair, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
    """A client cert the API server maps to `user` (CN) in `groups` (O), e.g. an unprivileged tester."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    key, cert = _sign_leaf(*_load_authority(ca_pair), x509.Name(attrs), ExtendedKeyUsageOID.CLIENT_AUTH, [])
    directory.mkdir(parents=True, exist_ok=True)
    return _write_pair(directory, f"user-{user}", key, cert)
