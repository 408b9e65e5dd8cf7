"""The Kubernetes client port: the only module that imports lightkube.

Callers work with plain dicts (the JSON the API server speaks) and (apiVersion, kind) pairs, so no
lightkube type leaks into add-ons and the client can be swapped without touching them. Errors are
typed by what a caller decides on (NotFound, Conflict, Gone, Forbidden, Invalid), not by HTTP code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec
from lightkube import AsyncClient, codecs
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource, api_info
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import (
    async_load_in_cluster_generic_resources,
    create_global_resource,
    create_namespaced_resource,
)
from lightkube.types import PatchType

Obj = dict[str, Any]
Ops = list[Obj]  # module-level alias: inside KubeClient, `list` names the method
DEFAULT_FIELD_MANAGER = "kubewright"


class KubeError(Exception):
    """An API call failed; `code` and `reason` come from the server's Status."""

    def __init__(self, message: str, *, code: int, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class BadRequest(KubeError):
    """400: the server (or an admission webhook denying with 400) rejected the request as malformed."""


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """409: AlreadyExists on create, or a resourceVersion / field-manager conflict."""


class Gone(KubeError):
    """410: the resourceVersion is older than etcd's compaction; re-list."""


class Forbidden(KubeError):
    pass


class Invalid(KubeError):
    """422: the object failed validation; the message names the fields."""


class TooManyRequests(KubeError):
    """429: throttled, or an eviction a PodDisruptionBudget does not allow right now."""


class Unavailable(KubeError):
    """The API server could not be reached, or the connection broke mid-response; retry."""


_BY_CODE: dict[int, type[KubeError]] = {
    400: BadRequest,
    404: NotFound,
    409: Conflict,
    410: Gone,
    403: Forbidden,
    422: Invalid,
    429: TooManyRequests,
}


@contextmanager
def _api_errors() -> Iterator[None]:
    """Turn lightkube's and the transport's exceptions into the typed errors callers decide on."""
    try:
        yield
    except (ApiError, httpx.TransportError) as err:
        raise _typed(err) from err


def _typed(err: ApiError | httpx.TransportError) -> KubeError:
    """One error vocabulary for callers: typed by what they decide on, transport failures included."""
    if isinstance(err, httpx.TransportError):
        return Unavailable(f"API server unreachable: {err!r}", code=0, reason="Unavailable")
    status = err.status
    code = int(status.code or err.response.status_code if err.response is not None else 0)
    cls = _BY_CODE.get(code, KubeError)
    return cls(status.message or str(err), code=code, reason=status.reason or "")


@dataclass(frozen=True)
class CustomKind:
    """A CRD kind the client should know; lightkube cannot guess plural and scope."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool


class KubeClient:
    """Async dict-in / dict-out Kubernetes client with server-side apply under one field manager."""

    def __init__(self, config: KubeConfig, field_manager: str = DEFAULT_FIELD_MANAGER) -> None:
        self._client = AsyncClient(config=config, field_manager=field_manager)
        # A second, raw HTTP client for what lightkube does not expose: paged lists with their
        # metadata, watches with bookmarks, and metadata-only (PartialObjectMetadata) responses.
        # No read timeout: watch streams idle by design; the informer enforces its own deadline.
        params = client_adapter.ConnectionParams(timeout=httpx.Timeout(10.0, read=None))
        single = config.get()
        if single is None:
            raise ValueError("kubeconfig has no current context (set current-context or pass a context)")
        self._http = client_adapter.AsyncClient(single, params)
        self.field_manager = field_manager

    @classmethod
    def from_kubeconfig(cls, path: Path | str, field_manager: str = DEFAULT_FIELD_MANAGER) -> KubeClient:
        return cls(KubeConfig.from_file(str(path)), field_manager)

    @classmethod
    def from_environment(cls, field_manager: str = DEFAULT_FIELD_MANAGER) -> KubeClient:
        """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
        return cls(KubeConfig.from_env(), field_manager)

    async def close(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    def register(custom: CustomKind) -> None:
        """Teach the client a custom kind so get/list/apply accept it by (apiVersion, kind)."""
        make = create_namespaced_resource if custom.namespaced else create_global_resource
        make(custom.group, custom.version, custom.kind, custom.plural)

    async def discover_custom_kinds(self) -> None:
        """Register every CRD currently served, so callers need not describe them."""
        await async_load_in_cluster_generic_resources(self._client)

    @staticmethod
    def _resource(api_version: str, kind: str) -> Any:
        return resource_registry.load(api_version, kind)

    @classmethod
    def _subresource(cls, api_version: str, kind: str, sub: str) -> Any:
        resource = cls._resource(api_version, kind)
        try:
            return getattr(resource, sub)
        except AttributeError:
            raise ValueError(f"{kind}.{api_version} has no {sub.lower()} subresource") from None

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        with _api_errors():
            obj = await self._client.get(self._resource(api_version, kind), name, namespace=namespace)
        return _to_dict(obj)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        chunk_size: int = 500,
    ) -> Ops:
        """All matching objects, fetched in pages of `chunk_size` (selectors applied server-side)."""
        with _api_errors():
            return [
                _to_dict(o)
                async for o in self._client.list(
                    self._resource(api_version, kind),
                    namespace=namespace,
                    labels=dict(labels) if labels else None,
                    fields=dict(fields) if fields else None,
                    chunk_size=chunk_size,
                )
            ]

    async def create(self, obj: Obj, *, dry_run: bool = False) -> Obj:
        with _api_errors():
            created = await self._client.create(codecs.from_dict(obj), dry_run=dry_run)
        return _to_dict(created)

    async def apply(self, obj: Obj, *, force: bool = True, dry_run: bool = False) -> Obj:
        """Server-side apply: we own exactly the fields in `obj` under our field manager."""
        with _api_errors():
            applied = await self._client.apply(
                codecs.from_dict(obj), field_manager=self.field_manager, force=force, dry_run=dry_run
            )
        return _to_dict(applied)

    async def replace(self, obj: Obj) -> Obj:
        """PUT the whole object; with metadata.resourceVersion set, a concurrent writer gives Conflict."""
        with _api_errors():
            out = await self._client.replace(codecs.from_dict(obj), field_manager=self.field_manager)
        return _to_dict(out)

    async def merge_patch(
        self, api_version: str, kind: str, name: str, patch: Obj, namespace: str | None = None
    ) -> Obj:
        return await self._patch(api_version, kind, name, patch, namespace, PatchType.MERGE)

    async def merge_patch_status(
        self, api_version: str, kind: str, name: str, patch: Obj, namespace: str | None = None
    ) -> Obj:
        """Patch the status subresource (writes to status through the main resource are ignored)."""
        return await self._patch(
            api_version, kind, name, patch, namespace, PatchType.MERGE, subresource="Status"
        )

    async def get_scale(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        """The scale subresource (autoscaling/v1 Scale): spec.replicas, status.replicas, status.selector."""
        with _api_errors():
            scale = await self._client.get(
                self._subresource(api_version, kind, "Scale"), name, namespace=namespace
            )
        return _to_dict(scale)

    async def set_scale(
        self, api_version: str, kind: str, name: str, replicas: int, namespace: str | None = None
    ) -> Obj:
        """Set spec.replicas through the scale subresource, as HPA and `kubectl scale` do."""
        patch = {"spec": {"replicas": replicas}}
        return await self._patch(
            api_version, kind, name, patch, namespace, PatchType.MERGE, subresource="Scale"
        )

    async def evict(
        self, name: str, namespace: str, *, uid: str | None = None, dry_run: bool = False
    ) -> None:
        """Evict a Pod through the Eviction API, which honours PodDisruptionBudgets.

        A budget that forbids the eviction gives TooManyRequests (429); retry later. With `uid`, a pod
        re-created under the same name since the decision is not evicted (Conflict instead).
        """
        eviction: Obj = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        options: Obj = {}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        if dry_run:
            options["dryRun"] = ["All"]
        if options:
            eviction["deleteOptions"] = options
        res = self._subresource("v1", "Pod", "Eviction")
        with _api_errors():
            await self._client.create(res.from_dict(eviction), name=name, namespace=namespace)

    async def json_patch(
        self, api_version: str, kind: str, name: str, ops: Ops, namespace: str | None = None
    ) -> Obj:
        return await self._patch(api_version, kind, name, ops, namespace, PatchType.JSON)

    async def _patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Obj | Ops,
        namespace: str | None,
        patch_type: PatchType,
        subresource: str | None = None,
    ) -> Obj:
        res = (
            self._subresource(api_version, kind, subresource)
            if subresource
            else self._resource(api_version, kind)
        )
        with _api_errors():
            out = await self._client.patch(res, name, patch, namespace=namespace, patch_type=patch_type)
        return _to_dict(out)

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        missing_ok: bool = False,
    ) -> None:
        try:
            await self._client.delete(self._resource(api_version, kind), name, namespace=namespace)
        except (ApiError, httpx.TransportError) as err:
            typed = _typed(err)
            if missing_ok and isinstance(typed, NotFound):
                return
            raise typed from err

    async def exec(
        self, name: str, namespace: str, command: Sequence[str], *, container: str | None = None
    ) -> tuple[int, str, str]:
        """Run `command` in a pod over the exec websocket; returns (exit code, stdout, stderr)."""
        with _api_errors():
            res = await self._client.exec(
                name,
                namespace=namespace,
                container=container,
                command=list(command),
                stdout=True,
                stderr=True,
            )
        return res.exit_code, _text(res.stdout), _text(res.stderr)

    async def server_version(self) -> Obj:
        """GET /version: major, minor, gitVersion (public on every API server; no RBAC needed)."""
        try:
            response = await self._http.get("/version")
        except httpx.TransportError as err:
            raise Unavailable(f"GET /version: {err!r}", code=0, reason="Unavailable") from err
        _raise_for_status(response, "GET /version")
        version: Obj = response.json()
        return version

    async def list_page(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        limit: int = 500,
        continue_token: str | None = None,
        metadata_only: bool = False,
    ) -> Obj:
        """One page of a LIST as raw JSON: `items`, `metadata.resourceVersion`, `metadata.continue`.

        With `metadata_only` the server returns PartialObjectMetadata (no spec or status), which is
        what caches that read only labels and owners should hold.
        """
        params = {"limit": str(limit)}
        for key, value in (
            ("labelSelector", _selector(labels)),
            ("fieldSelector", _selector(fields)),
            ("continue", continue_token),
        ):
            if value:
                params[key] = value
        headers = {"Accept": META_LIST_ACCEPT if metadata_only else "application/json"}
        path = resource_path(api_version, kind, namespace)
        try:
            response = await self._http.get(path, params=params, headers=headers)
        except httpx.TransportError as err:
            raise Unavailable(f"LIST {path}: {err!r}", code=0, reason="Unavailable") from err
        _raise_for_status(response, f"LIST {path}")
        page: Obj = response.json()
        return page

    async def watch_stream(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        resource_version: str,
        labels: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        timeout_seconds: int = 300,
        metadata_only: bool = False,
    ) -> AsyncIterator[Obj]:
        """Raw watch events ({"type", "object"}) from `resource_version`, bookmarks included.

        An ERROR event carrying 410 (or a 410 response) raises Gone: the caller must re-list. The
        stream ends when the server closes it after `timeout_seconds`.
        """
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        for key, value in (("labelSelector", _selector(labels)), ("fieldSelector", _selector(fields))):
            if value:
                params[key] = value
        headers = {"Accept": META_WATCH_ACCEPT if metadata_only else "application/json"}
        path = resource_path(api_version, kind, namespace)
        try:
            async with self._http.stream("GET", path, params=params, headers=headers) as response:
                _raise_for_status(response, f"WATCH {path}")
                async for line in response.aiter_lines():
                    if line:
                        yield _watch_event(line, path)
        except httpx.TransportError as err:
            raise Unavailable(f"WATCH {path}: {err!r}", code=0, reason="Unavailable") from err

    async def events(self, api_version: str, kind: str, namespace: str | None = None) -> AsyncIterator[Obj]:
        """A single watch stream of {"type", "object"} events (the informer builds resilience on top)."""
        with _api_errors():
            async for op, obj in self._client.watch(self._resource(api_version, kind), namespace=namespace):
                yield {"type": op, "object": _to_dict(obj)}


def _to_dict(obj: Any) -> Obj:
    out: Obj = obj.to_dict()
    return out


def _text(stream: str | bytes | None) -> str:
    if stream is None:
        return ""
    return stream if isinstance(stream, str) else stream.decode("utf-8", errors="replace")


META_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
META_WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def resource_path(api_version: str, kind: str, namespace: str | None = None) -> str:
    """The collection URL path of a kind, e.g. /api/v1/namespaces/ns/pods or /apis/apps/v1/deployments."""
    cls = resource_registry.load(api_version, kind)
    info = api_info(cls)
    res = info.resource
    base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    if namespace is not None and issubclass(cls, NamespacedResource):
        base += f"/namespaces/{namespace}"
    return f"{base}/{info.plural}"


_decode = msgspec.json.Decoder().decode  # decode once, fast: watch lines are the hot path


def _watch_event(line: str, path: str) -> Obj:
    """Decode one watch line; an ERROR event becomes the typed error it carries (410 -> Gone)."""
    event: Obj = _decode(line)
    if event.get("type") == "ERROR":
        status = event.get("object", {})
        code = int(status.get("code", 0))
        cls = _BY_CODE.get(code, KubeError)
        raise cls(f"WATCH {path}: {status.get('message', '')}", code=code, reason=status.get("reason", ""))
    return event


def _selector(selector: Mapping[str, str] | None) -> str | None:
    return ",".join(f"{k}={v}" for k, v in selector.items()) if selector else None


def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    try:
        status = json.loads(response.read())
        message, reason = status.get("message", ""), status.get("reason", "")
    except (ValueError, httpx.ResponseNotRead):
        message, reason = response.reason_phrase, ""
    cls = _BY_CODE.get(response.status_code, KubeError)
    raise cls(f"{what}: {message}", code=response.status_code, reason=reason)
