"""`kubewright spotalis ...`: the add-on's commands, all registered on `spotalis_app`.

The umbrella CLI needs only `app.add_typer(spotalis_app, name="spotalis")`. Each command is one function
decorated with `@spotalis_app.command(...)`; commands that need the runtime (`run`, `check-config`,
`explain`) live in their own modules and join the same way, so this module stays importable without a
cluster. Bad input exits 2 (click's usage-error code) with a message naming the flag and what it accepts.

`split` is the offline replica math: it reads its numbers with the annotation grammar, so
`--spot-percentage 70%` works exactly as the annotation would.
"""

from __future__ import annotations

import json
import re

import typer

from kubewright.spotalis.annotations import (
    MIN_ON_DEMAND_RULE,
    SPOT_PERCENTAGE_RULE,
    AnnotationError,
    parse_min_on_demand,
    parse_spot_percentage,
)
from kubewright.spotalis.split import desired_split

# spec.replicas is an int32.
MAX_REPLICAS = 2**31 - 1
REPLICAS_RULE = f"an integer 0..{MAX_REPLICAS}"
_REPLICAS = re.compile(r"\+?[0-9]+")

spotalis_app = typer.Typer(
    help="Spotalis: keep each opted-in Deployment or StatefulSet at a spot / on-demand split.",
    no_args_is_help=True,
    add_completion=False,
)


@spotalis_app.callback()
def spotalis() -> None:
    """Spotalis: keep each opted-in Deployment or StatefulSet at a spot / on-demand split."""


def _replicas(value: str) -> int:
    digits = value.lstrip("+").lstrip("0")
    if (
        not _REPLICAS.fullmatch(value)
        or len(digits) > len(str(MAX_REPLICAS))
        or int(digits or "0") > MAX_REPLICAS
    ):
        raise typer.BadParameter(f"{value!r} is not {REPLICAS_RULE}", param_hint="'--replicas'")
    return int(digits or "0")


@spotalis_app.command("split")
def split(
    replicas: str = typer.Option(..., "--replicas", help=f"Total replicas T: {REPLICAS_RULE}."),
    spot_percentage: str = typer.Option(
        ..., "--spot-percentage", help=f"Spot percentage P, as the annotation: {SPOT_PERCENTAGE_RULE}."
    ),
    min_on_demand: str = typer.Option(
        ..., "--min-on-demand", help=f"On-demand floor M, as the annotation: {MIN_ON_DEMAND_RULE}."
    ),
) -> None:
    """Print the target split of T replicas as JSON: {"spot": S, "on_demand": O}."""
    total = _replicas(replicas)
    try:
        percentage = parse_spot_percentage(spot_percentage, key="--spot-percentage")
    except AnnotationError as error:
        raise typer.BadParameter(_problem(error), param_hint="'--spot-percentage'") from None
    try:
        floor = parse_min_on_demand(min_on_demand, key="--min-on-demand")
    except AnnotationError as error:
        raise typer.BadParameter(_problem(error), param_hint="'--min-on-demand'") from None
    result = desired_split(total, percentage, floor)
    typer.echo(json.dumps({"spot": result.spot, "on_demand": result.on_demand}))


def _problem(error: AnnotationError) -> str:
    return f"{error.value!r} is {error.problem}; allowed: {error.allowed}"
