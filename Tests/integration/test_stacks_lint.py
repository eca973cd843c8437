"""Every stack in stacks/ is valid CloudFormation as cfn-lint (AWS's linter, PyPI) judges it: the lab's
Swift handlers declared as a custom runtime (`provided.al2023`, Code in the nimbus-builtin bucket),
the Python ones as python3.x with their code inline."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO

STACKS = sorted((REPO / "stacks").glob("*.yaml"))


@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
def test_the_stack_passes_cfn_lint(stack):
    if shutil.which("cfn-lint") is None:
        pytest.skip("cfn-lint is not installed (pip install cfn-lint)")
    result = subprocess.run(["cfn-lint", str(stack)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"cfn-lint {stack.name}:\n{result.stdout}{result.stderr}"
