"""Helpers shared by runtime tests: certificate files, Secret-volume updates, AdmissionReview bodies."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import trustme
from hypothesis import strategies as st


def issue_server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1")


def write_pair(leaf: trustme.LeafCert, cert_file: Path, key_file: Path) -> None:
    """Write the leaf's chain and key, replacing whatever was there (non-atomic, like a careless writer)."""
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())


def leaf_der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def client_context(*cas: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for authority in cas:
        authority.configure_trust(context)
    return context


def kubelet_swap(volume: Path, leaf: trustme.LeafCert, generation: int) -> None:
    """Update a Secret volume the way the kubelet does: new timestamped dir, atomic `..data` re-point."""
    data_dir = volume / f"..gen{generation}"
    data_dir.mkdir()
    write_pair(leaf, data_dir / "tls.crt", data_dir / "tls.key")
    tmp_link = volume / "..data_tmp"
    tmp_link.symlink_to(data_dir.name)
    os.replace(tmp_link, volume / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")


def pod_review(**request_overrides: Any) -> dict[str, Any]:
    """A review as kube-apiserver v1.3x sends it for a Pod CREATE."""
    request: dict[str, Any] = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "subResource": "",
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "web-0",
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "1d5c6b2a",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/pod-name": ["x"]},
        },
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "labels": {"app": "web"}},
        },
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        "someFieldFromTheFuture": True,
    }
    request.update(request_overrides)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=5)
