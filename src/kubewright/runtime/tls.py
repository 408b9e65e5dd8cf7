"""Serving certificates that rotate without a restart.

cert-manager renews the certificate, the kubelet updates the mounted Secret volume, and the server has to
present the new certificate on new handshakes without dropping the connections it is serving.

- Change detection is by content hash, polled: the kubelet swaps Secret volumes by re-pointing a `..data`
  symlink, so mtimes and inotify on the visible files are unreliable.
- The new pair is loaded into the *same* `ssl.SSLContext` the server already uses, so new handshakes
  pick it up while established connections keep theirs.
- A pair is validated on a scratch context first. `load_cert_chain` on a live context that fails on a
  key/cert mismatch (e.g. a half-written update) has already replaced the certificate and dropped the
  key, and every following handshake fails; validating first keeps the old pair serving instead.
- The bytes that were hashed and validated are exactly the bytes loaded: they are handed to OpenSSL from
  memory-backed files, never by re-opening the mounted paths, which may have changed in between.

Loading runs on the event loop thread, which is also where asyncio performs handshakes, so a handshake
never sees a half-loaded context.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from kubewright.runtime.clock import Clock
from kubewright.runtime.logs import get_logger

DEFAULT_POLL_INTERVAL = 1.0


class CertificateError(Exception):
    """The certificate/key pair at the given paths cannot be served."""


def new_server_context() -> ssl.SSLContext:
    """A server context with modern defaults (TLS 1.2+) and no certificate yet; see `CertReloader`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def pair_digest(cert_pem: bytes, key_pem: bytes) -> str:
    """Content identity of a pair; the length prefix keeps (cert, key) boundaries unambiguous."""
    digest = hashlib.sha256()
    digest.update(len(cert_pem).to_bytes(8, "big"))
    digest.update(cert_pem)
    digest.update(key_pem)
    return digest.hexdigest()


class CertReloader:
    """Keeps `context` serving the pair found at `cert_file` / `key_file`.

    Call `load()` once before serving (it raises if the pair is unusable), then run `run()` as a task;
    it polls every `interval` seconds on `clock` and swaps the pair in place when the content changed.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        cert_file: Path,
        key_file: Path,
        clock: Clock,
        interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self.context = context
        self.cert_file = cert_file
        self.key_file = key_file
        self._clock = clock
        self._interval = interval
        self._loaded_digest: str | None = None
        self._rejected_digest: str | None = None
        self.reloads = 0
        self.rejections = 0
        self._log = get_logger("kubewright.runtime.tls").bind(
            cert_file=str(cert_file), key_file=str(key_file)
        )

    @property
    def loaded_digest(self) -> str | None:
        return self._loaded_digest

    def load(self) -> None:
        """Load the current pair, raising `CertificateError` when it is missing or inconsistent."""
        cert_pem, key_pem = self._read()
        self._apply(cert_pem, key_pem)
        self._loaded_digest = pair_digest(cert_pem, key_pem)

    def reload_if_changed(self) -> bool:
        """Load the pair if its content changed and is valid; True when a new pair is now served.

        An unreadable or inconsistent pair is logged (once per distinct content) and the old one kept:
        during an update the files are briefly a mix of old and new.
        """
        try:
            cert_pem, key_pem = self._read()
        except CertificateError as exc:
            self._reject(f"unreadable:{exc}", str(exc))
            return False
        digest = pair_digest(cert_pem, key_pem)
        if digest == self._loaded_digest:
            return False
        try:
            self._apply(cert_pem, key_pem)
        except CertificateError as exc:
            self._reject(digest, str(exc))
            return False
        self._loaded_digest = digest
        self._rejected_digest = None
        self.reloads += 1
        self._log.info("serving certificate reloaded", **_describe(cert_pem))
        return True

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self._clock.sleep(self._interval)
            self.reload_if_changed()

    def _read(self) -> tuple[bytes, bytes]:
        try:
            return self.cert_file.read_bytes(), self.key_file.read_bytes()
        except OSError as exc:
            raise CertificateError(f"cannot read certificate pair: {exc}") from exc

    def _apply(self, cert_pem: bytes, key_pem: bytes) -> None:
        with _in_memory_files(cert_pem, key_pem) as (cert_path, key_path):
            try:
                new_server_context().load_cert_chain(cert_path, key_path)
            except (ssl.SSLError, OSError) as exc:
                raise CertificateError(
                    f"certificate {self.cert_file} and key {self.key_file} do not form a usable pair: {exc}"
                ) from exc
            self.context.load_cert_chain(cert_path, key_path)

    def _reject(self, identity: str, reason: str) -> None:
        self.rejections += 1
        if identity != self._rejected_digest:
            self._rejected_digest = identity
            self._log.error("keeping the previous serving certificate", reason=reason)


@contextmanager
def _in_memory_files(*contents: bytes) -> Iterator[list[str]]:
    """Paths OpenSSL can open that hold `contents`, without writing key material to a filesystem.

    Linux memfds need no writable directory (read-only root filesystems are the norm for these pods);
    elsewhere, a private temporary directory stands in.
    """
    with ExitStack() as stack:
        if hasattr(os, "memfd_create"):
            paths = []
            for data in contents:
                fd = os.memfd_create("kubewright-tls", os.MFD_CLOEXEC)
                stack.callback(os.close, fd)
                remaining = memoryview(data)
                while remaining:
                    remaining = remaining[os.write(fd, remaining) :]
                paths.append(f"/proc/self/fd/{fd}")
            yield paths
            return
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubewright-tls-")))
        paths = []
        for index, data in enumerate(contents):
            path = directory / f"{index}.pem"
            path.touch(mode=0o600)
            path.write_bytes(data)
            paths.append(str(path))
        yield paths


def _describe(cert_pem: bytes) -> dict[str, str]:
    """Identity of the leaf certificate for the reload log line (what operators check after a renewal)."""
    try:
        # Imported on use: cryptography costs ~8 MB resident, and webhooks capped on memory only need it
        # when a rotation is logged.
        from cryptography import x509

        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return {}
    return {
        "subject": leaf.subject.rfc4514_string(),
        "serial": format(leaf.serial_number, "x"),
        "not_after": leaf.not_valid_after_utc.isoformat(),
    }
