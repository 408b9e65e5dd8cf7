"""The Kubernetes client port: the only module that imports lightkube.

Callers work with plain dicts (the JSON the API server speaks) and (apiVersion, kind) pairs, so no
lightkube type leaks into add-ons and the client can be swapped without touching them. Errors are
typed by what a caller decides on (NotFound, Conflict, Gone, Forbidden, Invalid), not by HTTP code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, codecs
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
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


_BY_CODE: dict[int, type[KubeError]] = {404: NotFound, 409: Conflict, 410: Gone, 403: Forbidden, 422: Invalid}


def _typed(err: ApiError) -> KubeError:
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

    def __init__(self, client: AsyncClient, field_manager: str = DEFAULT_FIELD_MANAGER) -> None:
        self._client = client
        self.field_manager = field_manager

    @classmethod
    def from_kubeconfig(cls, path: Path | str, field_manager: str = DEFAULT_FIELD_MANAGER) -> KubeClient:
        config = KubeConfig.from_file(str(path))
        return cls(AsyncClient(config=config, field_manager=field_manager), field_manager)

    async def close(self) -> None:
        await self._client.close()

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

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        try:
            obj = await self._client.get(self._resource(api_version, kind), name, namespace=namespace)
        except ApiError as err:
            raise _typed(err) from err
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
        try:
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
        except ApiError as err:
            raise _typed(err) from err

    async def create(self, obj: Obj) -> Obj:
        try:
            created = await self._client.create(codecs.from_dict(obj))
        except ApiError as err:
            raise _typed(err) from err
        return _to_dict(created)

    async def apply(self, obj: Obj, *, force: bool = True) -> Obj:
        """Server-side apply: we own exactly the fields in `obj` under our field manager."""
        try:
            applied = await self._client.apply(
                codecs.from_dict(obj), field_manager=self.field_manager, force=force
            )
        except ApiError as err:
            raise _typed(err) from err
        return _to_dict(applied)

    async def merge_patch(
        self, api_version: str, kind: str, name: str, patch: Obj, namespace: str | None = None
    ) -> Obj:
        return await self._patch(api_version, kind, name, patch, namespace, PatchType.MERGE)

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
    ) -> Obj:
        try:
            out = await self._client.patch(
                self._resource(api_version, kind), name, patch, namespace=namespace, patch_type=patch_type
            )
        except ApiError as err:
            raise _typed(err) from err
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
        except ApiError as err:
            typed = _typed(err)
            if missing_ok and isinstance(typed, NotFound):
                return
            raise typed from err

    async def exec(
        self, name: str, namespace: str, command: Sequence[str], *, container: str | None = None
    ) -> tuple[int, str, str]:
        """Run `command` in a pod over the exec websocket; returns (exit code, stdout, stderr)."""
        try:
            res = await self._client.exec(
                name,
                namespace=namespace,
                container=container,
                command=list(command),
                stdout=True,
                stderr=True,
            )
        except ApiError as err:
            raise _typed(err) from err
        return res.exit_code, _text(res.stdout), _text(res.stderr)

    async def events(self, api_version: str, kind: str, namespace: str | None = None) -> AsyncIterator[Obj]:
        """A single watch stream of {"type", "object"} events (the informer builds resilience on top)."""
        try:
            async for op, obj in self._client.watch(self._resource(api_version, kind), namespace=namespace):
                yield {"type": op, "object": _to_dict(obj)}
        except ApiError as err:
            raise _typed(err) from err


def _to_dict(obj: Any) -> Obj:
    out: Obj = obj.to_dict()
    return out


def _text(stream: str | bytes | None) -> str:
    if stream is None:
        return ""
    return stream if isinstance(stream, str) else stream.decode("utf-8", errors="replace")
