"""/healthz and /readyz endpoints with named checks, in the Kubernetes API server's format.

A check is a plain callable (sync or async) that passes by returning and fails by raising. Responses
follow kube-apiserver and controller-runtime so probes and humans read them the same way: `ok` with
200 when every check passes; one `[+]name ok` / `[-]name failed: reason withheld` line per check with
`?verbose` or on failure (500); `/healthz/<name>` runs one check. Failure reasons go to the log, not to
the unauthenticated probe response. Async checks run under a timeout so a hung dependency turns into a
failed probe instead of a probe that never answers; sync checks must be cheap (they run on the loop).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from kubewright.runtime.logs import get_logger

HealthCheck = Callable[[], None] | Callable[[], Awaitable[None]]

DEFAULT_CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    error: str | None

    @property
    def passed(self) -> bool:
        return self.error is None


class HealthEndpoint:
    """One probe endpoint (e.g. `healthz` or `readyz`) and its named checks."""

    def __init__(self, name: str, timeout: float = DEFAULT_CHECK_TIMEOUT) -> None:
        self.name = name
        self._timeout = timeout
        self._checks: dict[str, HealthCheck] = {}
        self._log = get_logger("kubewright.runtime.health").bind(endpoint=name)

    def add_check(self, name: str, check: HealthCheck) -> None:
        """Register `check` under `name`, which also becomes the sub-path `/<endpoint>/<name>`."""
        if not name or "/" in name:
            raise ValueError(f"{self.name} check name {name!r} must be non-empty and contain no '/'")
        if name in self._checks:
            raise ValueError(f"{self.name} already has a check named {name!r}")
        self._checks[name] = check

    async def run(self, exclude: frozenset[str] = frozenset()) -> list[CheckResult]:
        """Run every check not excluded, concurrently; with no checks registered, a `ping` that passes."""
        checks = self._checks or {"ping": _ping}
        names = [name for name in sorted(checks) if name not in exclude]
        errors = await asyncio.gather(*(self._run_one(name, checks[name]) for name in names))
        return [CheckResult(name, error) for name, error in zip(names, errors, strict=True)]

    async def handle(self, request: web.Request) -> web.Response:
        results = await self.run(frozenset(request.query.getall("exclude", [])))
        passed = all(result.passed for result in results)
        if passed and "verbose" not in request.query:
            return web.Response(text="ok")
        lines = [
            f"[+]{result.name} ok" if result.passed else f"[-]{result.name} failed: reason withheld"
            for result in results
        ]
        lines.append(f"{self.name} check {'passed' if passed else 'failed'}")
        return web.Response(text="\n".join(lines) + "\n", status=200 if passed else 500)

    async def handle_one(self, request: web.Request) -> web.Response:
        name = request.match_info["check"]
        checks = self._checks or {"ping": _ping}
        check = checks.get(name)
        if check is None:
            return web.Response(text=f"{self.name} check {name!r} not found\n", status=404)
        error = await self._run_one(name, check)
        if error is None:
            return web.Response(text="ok")
        return web.Response(text=f"internal server error: {error}\n", status=500)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"/{self.name}", self.handle)
        app.router.add_get(f"/{self.name}/{{check}}", self.handle_one)

    async def _run_one(self, name: str, check: HealthCheck) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                outcome = check()
                if inspect.isawaitable(outcome):
                    await outcome
        except TimeoutError:
            error = f"timed out after {self._timeout}s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            return None
        self._log.warning("health check failed", check=name, error=error)
        return error


def _ping() -> None:
    """Passes whenever the process can serve HTTP at all."""
