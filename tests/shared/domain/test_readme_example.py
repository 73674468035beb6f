"""The workflow shown in the README is a valid one."""

from __future__ import annotations

import re
from pathlib import Path

from shared.domain.workflow_spec import validate_document


def test_readme_workflow_validates():
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    example = re.search(r"## Workflows\n\n```yaml\n(.*?)```", readme, re.DOTALL).group(1)

    assert validate_document(example) == []
