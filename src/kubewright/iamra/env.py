"""Spec 2.2 / 3.4: the environment that points an application's AWS SDK at the helper.

Existing variables are never overwritten: an app that sets its own endpoint or region meant it, and a
webhook silently changing it would be impossible to debug. Instead the creator gets a warning, as for
variables that make SDKs take credentials from somewhere earlier in their chain (static keys, web
identity, container credentials) or switch the metadata client off, since then the injected helper is
never asked.
"""

from __future__ import annotations

from typing import Any

from kubewright.iamra import constants as c
from kubewright.iamra.constants import WarningKind
from kubewright.iamra.effective import EffectiveConfig
from kubewright.iamra.outcome import Notice, notice
from kubewright.iamra.pod import Container

EnvPairs = tuple[tuple[str, str], ...]


def wanted_env(effective: EffectiveConfig) -> EnvPairs:
    """The variables in spec 2.2 order; the region pair only when the pod asked for a region."""
    pairs = [
        (c.ENV_METADATA_ENDPOINT, c.METADATA_ENDPOINT_TEMPLATE.format(port=effective.port)),
        (c.ENV_METADATA_ENDPOINT_MODE, c.METADATA_ENDPOINT_MODE),
    ]
    if effective.app_region is not None:
        pairs += [(c.ENV_REGION, effective.app_region), (c.ENV_DEFAULT_REGION, effective.app_region)]
    return tuple(pairs)


def add_missing_env(container: dict[str, Any], facts: Container, wanted: EnvPairs) -> list[Notice]:
    """Append the wanted variables `container` (the raw copy) lacks; warn about the rest of its env."""
    present = {var.name for var in facts.env}
    missing = [{"name": name, "value": value} for name, value in wanted if name not in present]
    if missing:
        env = container.get("env")
        if env is None:
            container["env"] = missing
        else:
            env.extend(missing)
    kept = [name for name, _ in wanted if name in present]
    return [*_kept_notice(facts.name, kept), *_chain_notices(facts)]


def _kept_notice(container: str, kept: list[str]) -> list[Notice]:
    if not kept:
        return []
    return [notice(WarningKind.ENV_EXISTS, f"container {container} keeps its own {', '.join(kept)}")]


def _chain_notices(facts: Container) -> list[Notice]:
    notices = []
    earlier = [
        var.name
        for var in facts.env
        if var.name in c.ENV_PRECEDING_CREDENTIALS or var.name.startswith(c.ENV_PRECEDING_CREDENTIALS_PREFIX)
    ]
    if earlier:
        notices.append(
            notice(
                WarningKind.CREDENTIALS_ENV,
                f"container {facts.name} sets {', '.join(earlier)}, which SDKs use before the helper",
            )
        )
    if any(
        var.name == c.ENV_METADATA_DISABLED and (var.value or "").strip().lower() == "true"
        for var in facts.env
    ):
        notices.append(
            notice(
                WarningKind.METADATA_DISABLED,
                f"container {facts.name} sets {c.ENV_METADATA_DISABLED}=true: SDKs skip the credentials",
            )
        )
    return notices
