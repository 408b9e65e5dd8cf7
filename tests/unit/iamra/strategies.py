"""Hypothesis strategies: pods shaped like what the API server sends, and hostile review bodies."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from .support import PROFILE_ARN, REQUIRED, ROLE_ARN

DNS_LABEL = st.from_regex(r"\A[a-z]([-a-z0-9]{0,10}[a-z0-9])?\Z")
ENV_NAMES = st.sampled_from(
    [
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_EC2_METADATA_DISABLED",
        "LOG_LEVEL",
        "PATH",
    ]
)
# Keys that need JSON-pointer escaping, and values of every JSON type, for fields this code does not know.
ODD_KEYS = st.sampled_from(["x-extra", "a/b", "t~n", "~1", "/", "ünï", "futureField"])
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)

VALID_OPTIONAL = {
    "iamra.aws/session-name": st.from_regex(r"\A[A-Za-z0-9+=,.@-]{2,20}\Z"),
    "iamra.aws/token-duration": st.integers(900, 43200).map(str),
    "iamra.aws/region": st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"]),
    "iamra.aws/log-level": st.sampled_from(["debug", "INFO", "warn", "Error"]),
    "iamra.aws/audience": st.sampled_from(["sts.amazonaws.com", "x"]),
    "iamra.aws/certificate-secret": DNS_LABEL,
}


def rarely() -> st.SearchStrategy[bool]:
    """True about one time in ten (a middle value: Hypothesis favours the bounds of integer ranges)."""
    return st.integers(0, 9).map(lambda value: value == 4)


@st.composite
def env_lists(draw: st.DrawFn) -> list[dict[str, Any]] | None:
    if draw(st.booleans()):
        return draw(st.none() | st.just([]))
    names = draw(st.lists(ENV_NAMES, max_size=4, unique=True))
    env: list[dict[str, Any]] = []
    for name in names:
        if draw(st.booleans()):
            env.append({"name": name, "value": draw(st.sampled_from(["true", "x", ""]))})
        else:
            env.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env


@st.composite
def containers(draw: st.DrawFn, names: list[str], init: bool) -> list[dict[str, Any]]:
    result = []
    for name in names:
        container: dict[str, Any] = {"name": name, "image": draw(st.sampled_from(["nginx", "busybox:1.36"]))}
        env = draw(env_lists())
        if env is not None or draw(st.booleans()):
            container["env"] = env
        if draw(st.booleans()):
            container["ports"] = [{"containerPort": draw(st.integers(1, 65535)), "protocol": "TCP"}]
        if draw(st.booleans()):
            container["envFrom"] = [{"configMapRef": {"name": "aws"}}]
        if init and draw(st.booleans()):
            container["restartPolicy"] = "Always"
        if draw(st.booleans()):
            container[draw(ODD_KEYS)] = draw(JSON_VALUES)
        result.append(container)
    return result


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    """Any pod the API server could send for an opted-in create: valid shapes, arbitrary contents."""
    names = draw(st.lists(DNS_LABEL, min_size=1, max_size=8, unique=True))
    split = draw(st.integers(1, len(names)))
    annotations: dict[str, str] = dict(REQUIRED) if not draw(rarely()) else {"iamra.aws/role-arn": ROLE_ARN}
    for key, values in VALID_OPTIONAL.items():
        if draw(st.integers(0, 3)) == 2:
            annotations[key] = draw(values)
    if draw(st.booleans()):
        annotations["iamra.aws/skip-containers"] = ",".join(
            draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        )
    if draw(rarely()):
        annotations["iamra.aws/signing-profile-arn"] = PROFILE_ARN.replace("us-east-1", "eu-west-1")
    for _ in range(draw(st.integers(0, 2))):
        annotations[draw(st.sampled_from(["example.com/a~b", "iamra.aws/typo", "x/y/z"]))] = draw(
            st.text(max_size=5)
        )
    metadata: dict[str, Any] = {"annotations": annotations}
    if draw(st.booleans()):
        metadata["name"] = draw(DNS_LABEL)
    else:
        metadata["generateName"] = draw(DNS_LABEL) + "-"
    if draw(st.booleans()):
        metadata["labels"] = {"batch.kubernetes.io/job-name": "j"}
    spec: dict[str, Any] = {"containers": draw(containers(names[:split], init=False))}
    if split < len(names) or draw(st.booleans()):
        spec["initContainers"] = draw(containers(names[split:], init=True)) if split < len(names) else None
    if draw(st.booleans()):
        volume_names = draw(st.lists(DNS_LABEL, max_size=3, unique=True))
        spec["volumes"] = [{"name": name, "emptyDir": {}} for name in volume_names]
    if draw(rarely()):
        spec["hostNetwork"] = True
    if draw(st.booleans()):
        spec[draw(ODD_KEYS)] = draw(JSON_VALUES)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


ANNOTATION_KEYS = [
    *REQUIRED,
    *VALID_OPTIONAL,
    "iamra.aws/skip-containers",
    "iamra.aws/injected",
    "iamra.aws/x",
]
HOSTILE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80
) | st.sampled_from(
    ["", " ", "9" * 5000, "\n", "\x00", "arn:aws:iam::123456789012:role/x\n", "900\n", "\uff11\uff12"]
)


@st.composite
def hostile_annotations(draw: st.DrawFn) -> dict[str, Any]:
    """Any value for any iamra annotation; the required pair starts out valid three times in four."""
    annotations: dict[str, Any] = dict(REQUIRED) if draw(st.integers(0, 3)) != 1 else {}
    for key in draw(st.lists(st.sampled_from(ANNOTATION_KEYS), max_size=6, unique=True)):
        valid = VALID_OPTIONAL.get(key)
        annotations[key] = draw(HOSTILE_TEXT if valid is None or draw(st.booleans()) else valid)
    return annotations


def review_body(request: Any) -> bytes:
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """A review body: arbitrary JSON, or a plausible review with any field replaced by anything."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return json.dumps(draw(JSON_VALUES)).encode()
    if choice == 1:
        return draw(st.binary(max_size=64))
    pod: dict[str, Any] = {"metadata": {"annotations": draw(hostile_annotations())}}
    if draw(st.booleans()):
        pod["spec"] = {"containers": [{"name": "app", "image": "x"}]}
    request: dict[str, Any] = {
        "uid": "u",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "object": pod,
    }
    for _ in range(draw(st.integers(0, 3))):
        path = draw(
            st.sampled_from(
                [
                    ("uid",), ("kind",), ("kind", "kind"), ("operation",), ("object",), ("subResource",),
                    ("object", "metadata"), ("object", "spec"), ("object", "spec", "containers"), ("dryRun",),
                    ("object", "metadata", "annotations"), ("object", "metadata", "deletionTimestamp"),
                ]
            )
        )  # fmt: skip
        target = request
        for part in path[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                break
            target = child
        else:
            target[path[-1]] = draw(JSON_VALUES)
    return review_body(request)
