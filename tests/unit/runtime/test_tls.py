from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path

import pytest
import trustme
from structlog.testing import capture_logs

from kubewright.runtime.clock import FakeClock
from kubewright.runtime.tls import CertificateError, CertReloader, new_server_context, pair_digest

from .support import client_context, issue_server_cert, kubelet_swap, leaf_der, write_pair

pytestmark = pytest.mark.unit


def served_certificate(server_context: ssl.SSLContext, *cas: trustme.CA) -> bytes:
    """DER of the certificate a fresh handshake against `server_context` presents (over a socketpair)."""
    server_sock, client_sock = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(server_sock, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context(*cas).wrap_socket(client_sock, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
            tls.send(b"x")
    finally:
        thread.join(timeout=5)
    assert not errors, errors
    assert der is not None
    return der


@pytest.fixture
def volume(tmp_path: Path, ca: trustme.CA) -> tuple[Path, trustme.LeafCert]:
    leaf = issue_server_cert(ca)
    kubelet_swap(tmp_path, leaf, 1)
    return tmp_path, leaf


def test_initial_load_and_unchanged_content(volume: tuple[Path, trustme.LeafCert], ca: trustme.CA) -> None:
    path, leaf = volume
    reloader = CertReloader(new_server_context(), path / "tls.crt", path / "tls.key", FakeClock())
    reloader.load()
    assert served_certificate(reloader.context, ca) == leaf_der(leaf)
    assert reloader.reload_if_changed() is False
    assert reloader.reloads == 0
    assert reloader.loaded_digest == pair_digest(
        (path / "tls.crt").read_bytes(), (path / "tls.key").read_bytes()
    )


def test_initial_load_of_a_bad_pair_raises(tmp_path: Path, ca: trustme.CA) -> None:
    first, second = issue_server_cert(ca), issue_server_cert(ca)
    write_pair(first, tmp_path / "tls.crt", tmp_path / "unused.key")
    write_pair(second, tmp_path / "unused.crt", tmp_path / "tls.key")
    reloader = CertReloader(new_server_context(), tmp_path / "tls.crt", tmp_path / "tls.key", FakeClock())
    with pytest.raises(CertificateError, match="do not form a usable pair"):
        reloader.load()
    with pytest.raises(CertificateError, match="cannot read"):
        CertReloader(new_server_context(), tmp_path / "missing.crt", tmp_path / "tls.key", FakeClock()).load()


def test_symlink_swap_reloads_in_place(
    volume: tuple[Path, trustme.LeafCert], ca: trustme.CA, other_ca: trustme.CA
) -> None:
    path, _ = volume
    context = new_server_context()
    reloader = CertReloader(context, path / "tls.crt", path / "tls.key", FakeClock())
    reloader.load()
    rotated = issue_server_cert(other_ca)
    kubelet_swap(path, rotated, 2)
    assert reloader.reload_if_changed() is True
    assert reloader.context is context
    assert served_certificate(context, ca, other_ca) == leaf_der(rotated)
    assert reloader.reloads == 1


def test_half_written_pair_keeps_the_old_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    old, new = issue_server_cert(ca), issue_server_cert(ca)
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_pair(old, cert_file, key_file)
    reloader = CertReloader(new_server_context(), cert_file, key_file, FakeClock())
    reloader.load()

    cert_file.write_bytes(new.cert_chain_pems[0].bytes())  # the key is still the old one
    with capture_logs() as logs:
        assert reloader.reload_if_changed() is False
        assert reloader.reload_if_changed() is False
    assert reloader.rejections == 2
    assert [entry["event"] for entry in logs] == ["keeping the previous serving certificate"], "logged once"
    assert "KEY_VALUES_MISMATCH" in logs[0]["reason"] or "mismatch" in logs[0]["reason"]
    assert served_certificate(reloader.context, ca) == leaf_der(old), "the live context must be untouched"

    key_file.unlink()
    assert reloader.reload_if_changed() is False
    assert served_certificate(reloader.context, ca) == leaf_der(old)

    key_file.write_bytes(new.private_key_pem.bytes())
    assert reloader.reload_if_changed() is True
    assert served_certificate(reloader.context, ca) == leaf_der(new)


async def test_run_polls_on_the_injected_clock(
    volume: tuple[Path, trustme.LeafCert], other_ca: trustme.CA
) -> None:
    path, _ = volume
    clock = FakeClock()
    reloader = CertReloader(new_server_context(), path / "tls.crt", path / "tls.key", clock, interval=30.0)
    reloader.load()
    task = asyncio.create_task(reloader.run())
    try:
        await clock.wait_for_sleepers(1)
        kubelet_swap(path, issue_server_cert(other_ca), 2)
        clock.advance(29.0)
        await asyncio.sleep(0)  # poll: yield to the event loop (no time passes)
        assert reloader.reloads == 0, "polled before the interval elapsed"
        clock.advance(1.0)
        await clock.wait_for_sleepers(1)  # woke, reloaded, sleeping again
        assert reloader.reloads == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
