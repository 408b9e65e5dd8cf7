"""ARN and region shapes shared by the config (trust anchor) and the pod validation (role, profile).

One definition, because the helper fails at run time when the profile's partition or region differs from
the trust anchor's ("trust anchor and profile regions don't match", aws_signing_helper/credentials.go):
the webhook compares them, so both sides must be parsed the same way. Patterns are ASCII-only and
matched in full (`re.fullmatch`), so a Unicode digit or a trailing newline never passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_PARTITION = r"aws(?:-[a-z]+)*"
_REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]"
_ACCOUNT = r"[0-9]{12}"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# IAM role names: `[\w+=,.@-]{1,64}`; a path is `/`-separated printable ASCII (no `/` inside a segment).
_ROLE_NAME = r"[\w+=,.@-]{1,64}"
_ROLE_PATH = r"(?:[!-.0-~]+/)*"

REGION_PATTERN: Final = re.compile(_REGION, re.ASCII)
ROLE_ARN_PATTERN: Final = re.compile(
    rf"arn:{_PARTITION}:iam::{_ACCOUNT}:role/{_ROLE_PATH}{_ROLE_NAME}", re.ASCII
)
PROFILE_ARN_PATTERN: Final = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):rolesanywhere:(?P<region>{_REGION}):{_ACCOUNT}:profile/{_UUID}",
    re.ASCII,
)
TRUST_ANCHOR_ARN_PATTERN: Final = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):rolesanywhere:(?P<region>{_REGION}):{_ACCOUNT}:trust-anchor/{_UUID}",
    re.ASCII,
)


@dataclass(frozen=True)
class Placement:
    """Where an IAM Roles Anywhere resource lives: what a profile must share with its trust anchor."""

    partition: str
    region: str


def is_region(value: str) -> bool:
    return REGION_PATTERN.fullmatch(value) is not None


def is_role_arn(value: str) -> bool:
    return ROLE_ARN_PATTERN.fullmatch(value) is not None


def profile_placement(arn: str) -> Placement | None:
    """Partition and region of a profile ARN, or None when it is not one."""
    return _placement(PROFILE_ARN_PATTERN, arn)


def trust_anchor_placement(arn: str) -> Placement | None:
    """Partition and region of a trust anchor ARN, or None when it is not one."""
    return _placement(TRUST_ANCHOR_ARN_PATTERN, arn)


def _placement(pattern: re.Pattern[str], arn: str) -> Placement | None:
    match = pattern.fullmatch(arn)
    return None if match is None else Placement(match["partition"], match["region"])
