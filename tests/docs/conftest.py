"""The integration harness's fixtures (tests/integration/conftest.py), reused: one
ministack per session (per xdist worker), the provider's bootstrap uploaded to it,
stacks deleted at teardown. Plus `provider_stack`: template.yaml deployed as the
stack the documentation imports from."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
sys.path.insert(0, str(INTEGRATION))
sys.path.insert(0, str(HERE))
# python-hcl2 for the Terraform snippets: scripts/check-docs installs it into .venv-docs.
if (HERE.parent.parent / ".venv-docs").is_dir():
    sys.path.append(str(HERE.parent.parent / ".venv-docs"))

_spec = importlib.util.spec_from_file_location("integration_conftest", INTEGRATION / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)
globals().update({k: v for k, v in vars(_integration).items() if not k.startswith("_") and k not in {"annotations"}})

from deploy_path import (CAPABILITIES, PROVIDER_STACK, create_from_s3, packaged_template,  # noqa: E402
                         provider_parameters)


@pytest.fixture
def provider_stack(ministack, stacks, provider_code):
    """template.yaml deployed as `resource-policy-provider`, the name the documentation's
    snippets import `resource-policy-provider-LiveServiceToken` from. Sent from S3 as
    TemplateURL: the template is over CloudFormation's 51,200-byte TemplateBody limit."""
    created = create_from_s3(stacks, PROVIDER_STACK, packaged_template(provider_code),
                             parameters=provider_parameters(ministack.peer.port), Capabilities=CAPABILITIES)
    assert created.status == "CREATE_COMPLETE", created.describe()
    return created


# The CDK example needs npm and a synthesized cdk.out: scripts/cdk-check sets CDK_OUT.
collect_ignore = [] if os.environ.get("CDK_OUT") else ["test_cdk_example.py"]
