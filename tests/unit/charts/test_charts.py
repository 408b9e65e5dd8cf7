"""The iamra-injector chart and its hello-world example: helm lint, the helm-unittest suites, the
values.schema.json coverage, the README values tables and the chart->webhook config contract.

helm and the helm-unittest plugin come from tools/controlplane (the pinned build). Without them these
tests skip with the reason, unless KUBEWRIGHT_REQUIRE_CONTROLPLANE is set (CI), where they fail: the same
rule as the control-plane tiers, so a missing build step never passes as green.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.helm import locate_helm, locate_helm_plugins, run_helm, schema_gaps

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
INJECTOR = ROOT / "charts" / "iamra-injector"
HELLO_WORLD = ROOT / "examples" / "iamra-hello-world"
CHARTS = (INJECTOR, HELLO_WORLD)

TRUST_ANCHOR = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/0f6d3b2e-7c1a-4b8e-9d2f-1a2b3c4d5e6f"
)
HELLO_WORLD_VALUES = (
    "--set",
    "roleArn=arn:aws:iam::123456789012:role/hello-world",
    "--set",
    "profileArn=arn:aws:rolesanywhere:us-east-1:123456789012:profile/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
)


@pytest.fixture(scope="module")
def helm() -> Path:
    return locate_helm()


@pytest.fixture(scope="module")
def helm_plugins(helm: Path) -> Path:
    return locate_helm_plugins()


def load_chart_readme() -> ModuleType:
    """scripts/ is not a package: load chart_readme.py by path."""
    spec = importlib.util.spec_from_file_location("chart_readme", ROOT / "scripts" / "chart_readme.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chart_readme"] = module
    spec.loader.exec_module(module)
    return module


chart_readme = load_chart_readme()


# --- helm lint and helm-unittest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chart", "values"),
    [
        pytest.param(INJECTOR, (), id="iamra-injector-defaults"),
        pytest.param(
            INJECTOR, ("-f", str(INJECTOR / "values.tls-example.yaml")), id="iamra-injector-tls-example"
        ),
        pytest.param(HELLO_WORLD, HELLO_WORLD_VALUES, id="iamra-hello-world"),
    ],
)
def test_helm_lint_strict(helm: Path, chart: Path, values: tuple[str, ...]) -> None:
    result = run_helm(helm, "lint", "--strict", str(chart), *values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.name)
def test_helm_unittest_suites(helm: Path, helm_plugins: Path, chart: Path) -> None:
    result = run_helm(helm, "unittest", str(chart), plugins=helm_plugins)
    assert result.returncode == 0, result.stdout + result.stderr


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    result = run_helm(
        helm, "template", "iamra", str(INJECTOR), "--namespace", "iamra-system",
        "--api-versions", "cert-manager.io/v1", "--kube-version", "1.31.0", *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_render_has_no_namespace_and_one_webhook(helm: Path) -> None:
    docs = render(helm, "-f", str(INJECTOR / "values.tls-example.yaml"))
    kinds = sorted(doc["kind"] for doc in docs)
    assert "Namespace" not in kinds
    assert kinds.count("MutatingWebhookConfiguration") == 1
    mwc = next(doc for doc in docs if doc["kind"] == "MutatingWebhookConfiguration")
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    assert [c["name"] for c in mwc["webhooks"][0]["matchConditions"]] == [
        "iamra-annotated",
        "iamra-not-injected",
    ]


def test_rendered_config_is_accepted_by_the_webhook(helm: Path) -> None:
    """The ConfigMap is the chart->webhook contract: the webhook's own loader must accept it as rendered."""
    config_module = pytest.importorskip("kubewright.iamra.config")
    for extra in ((), ("--set", "sidecar.native=false", "--set", "workloadCertificate.mode=secret")):
        docs = render(helm, "--set", f"trustAnchorArn={TRUST_ANCHOR}", "--set", "region=us-east-1", *extra)
        config_map = next(doc for doc in docs if doc["kind"] == "ConfigMap")
        assert config_map["metadata"]["name"] == "iamra-iamra-injector-config"
        config = config_module.config_from_mapping(yaml.safe_load(config_map["data"]["config.yaml"]))
        assert config.trustAnchorArn == TRUST_ANCHOR
        assert config.failurePolicy == "Fail"


# --- values.schema.json -----------------------------------------------------------------------------------


# Kubernetes objects passed through as they are: the schema types them as objects, not key by key.
PASSTHROUGH = ("resources", "nodeSelector", "affinity", "podAnnotations", "securityContext",
               "containerSecurityContext", "labels", "annotations")  # fmt: skip


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.name)
def test_schema_covers_every_value_and_closes_every_object(chart: Path) -> None:
    missing, open_objects = schema_gaps(chart, PASSTHROUGH)
    assert missing == []
    assert open_objects == []


# --- README values tables ---------------------------------------------------------------------------------


def test_readme_values_tables_are_current() -> None:
    assert chart_readme.main(["--check", *(str(c) for c in CHARTS)]) == 0


VALUES = """\
# header comment, not a doc
# -- Top-level string.
name: ""

# -- (string) Typed explicitly,
# continued on a second line.
mode: auto
section:
  # -- A nested number.
  port: 9911
  # -- A documented map is one row.
  resources:
    limits:
      memory: 128Mi
  list:
    - a
"""


def test_parse_docs_binds_comments_to_nested_keys() -> None:
    docs = chart_readme.parse_docs(VALUES)
    assert [(d.dotted, d.type, d.description) for d in docs] == [
        ("name", None, "Top-level string."),
        ("mode", "string", "Typed explicitly, continued on a second line."),
        ("section.port", None, "A nested number."),
        ("section.resources", None, "A documented map is one row."),
    ]


def test_undocumented_leaves_are_reported() -> None:
    values = yaml.safe_load(VALUES)
    assert chart_readme.undocumented(values, chart_readme.parse_docs(VALUES)) == ["section.list"]


def test_table_rows_show_type_and_json_default() -> None:
    values = yaml.safe_load(VALUES)
    table = chart_readme.render_table(chart_readme.parse_docs(VALUES), values)
    assert "| `section.port` | int | `9911` | A nested number. |" in table
    assert '| `section.resources` | object | `{"limits": {"memory": "128Mi"}}` |' in table
    assert '| `mode` | string | `"auto"` |' in table


def test_check_mode_fails_on_drift_and_write_mode_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "values.yaml").write_text(VALUES.replace("  list:\n    - a\n", ""))
    (chart / "README.md").write_text(
        f"# chart\n\n{chart_readme.START_MARKER}\nstale\n{chart_readme.END_MARKER}\n"
    )
    assert chart_readme.main(["--check", str(chart)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert chart_readme.main([str(chart)]) == 0
    assert chart_readme.main(["--check", str(chart)]) == 0
    readme = (chart / "README.md").read_text()
    assert readme.startswith("# chart\n\n<!-- values:start -->")
    assert "stale" not in readme


def test_missing_markers_and_undocumented_values_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "values.yaml").write_text(VALUES)
    (chart / "README.md").write_text("# chart\n")
    assert chart_readme.main(["--check", str(chart)]) == 1
    assert "section.list" in capsys.readouterr().err
    (chart / "values.yaml").write_text(VALUES.replace("  list:\n    - a\n", ""))
    assert chart_readme.main([str(chart)]) == 1
    assert "values:start" in capsys.readouterr().err
