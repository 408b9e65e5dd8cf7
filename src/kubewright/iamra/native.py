"""Whether to inject the credential helper as a native sidecar (spec 3.6).

Native sidecars (an init container with `restartPolicy: Always`) start before the app and let Jobs
complete; they need Kubernetes >= 1.29, where `SidecarContainers` is on by default. With `native:
auto` the webhook asks the API server's public /version at start-up and every
`nativeRefreshSeconds`, keeping the last answer when a refresh fails. Until the first answer the
webhook is not ready and refuses annotated pods (503) rather than guess.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from kubewright.runtime.clock import Clock

NATIVE_MIN = (1, 29)
_LEADING_DIGITS = re.compile(r"\d+")

log = structlog.get_logger("kubewright.iamra.native")


class VersionUnparsable(ValueError):
    """/version answered without usable major/minor digits."""


def parse_version(version: dict[str, Any]) -> tuple[int, int]:
    """(major, minor) from a /version document; "29+" and "29+k3s1" style minors are accepted."""
    parts = []
    for field in ("major", "minor"):
        raw = str(version.get(field, ""))
        match = _LEADING_DIGITS.search(raw)
        if match is None:
            raise VersionUnparsable(
                f"/version field {field!r} is {raw!r}: expected digits such as '29' or '29+'"
            )
        parts.append(int(match.group()))
    return parts[0], parts[1]


def native_for(version: tuple[int, int]) -> bool:
    return version >= NATIVE_MIN


class NativeMode:
    """The current native/legacy decision; `None` while `auto` has not heard from the server yet."""

    def __init__(
        self,
        setting: str,
        fetch_version: Callable[[], Awaitable[dict[str, Any]]],
        clock: Clock,
        refresh_seconds: float,
        on_change: Callable[[NativeMode], None] | None = None,
    ) -> None:
        if setting not in ("auto", "true", "false"):
            raise ValueError(f"sidecar.native: {setting!r} is not one of auto, true, false")
        self.setting = setting
        self._fetch = fetch_version
        self._clock = clock
        self._refresh = refresh_seconds
        self._native: bool | None = {"true": True, "false": False}.get(setting)
        self.source = "config" if setting != "auto" else "unknown"
        self.server_version: tuple[int, int] | None = None
        self._on_change = on_change
        if on_change is not None and self._native is not None:
            on_change(self)

    @property
    def native(self) -> bool | None:
        return self._native

    @property
    def known(self) -> bool:
        return self._native is not None

    async def refresh_once(self) -> None:
        """Ask the server; on failure keep the previous answer (and stay unknown if there was none)."""
        try:
            version = parse_version(await self._fetch())
        except Exception as err:  # keep the last value: a flaky API server must not flip modes
            log.warning("server version unavailable", error=str(err), keeping=self._native)
            return
        changed = self._native != native_for(version) or self.source != "server_version"
        self.server_version = version
        self._native = native_for(version)
        self.source = "server_version"
        if changed and self._on_change is not None:
            self._on_change(self)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop`: quickly (1 s) until first known, then every `refresh_seconds`."""
        if self.setting != "auto":
            return
        while not stop.is_set():
            await self.refresh_once()
            delay = self._refresh if self.known else 1.0
            sleeper = asyncio.create_task(self._clock.sleep(delay))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stopper.cancel()
