"""The agent runs on hosts without Core: starting it loads no database, Redis, queue or web code.

The import-linter contract checks the agent's own imports; this checks what the
command a host runs (``aisopsflow runner ...``) actually loads, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

CORE_ONLY = ("peewee", "redis", "dramatiq", "flask", "gunicorn", "psycopg2", "pymysql")


def test_the_runner_command_loads_none_of_cores_backends() -> None:
    code = (
        "import json, sys; import ops.cli; "
        "ops.cli.main(['runner', '--help'], standalone_mode=False); "
        f"print(json.dumps([m for m in {CORE_ONLY!r} if m in sys.modules]))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    loaded = json.loads(finished.stdout.strip().splitlines()[-1])
    assert loaded == [], f"`aisopsflow runner` loads {loaded}"
