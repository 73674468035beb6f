"""The plugin token: from the environment, else one 0600 file that concurrent starters agree on."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import SettingsError
from shared.plugin_token import load_plugin_token, token_file_path
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_the_environment_wins(tmp_path):
    settings = Settings(data_dir=tmp_path, plugin_token="given")

    assert load_plugin_token(settings) == "given"
    assert not token_file_path(settings).exists()


def test_a_file_is_created_once_with_mode_0600(tmp_path):
    settings = Settings(data_dir=tmp_path / "new")

    first = load_plugin_token(settings)

    assert len(first) >= 32
    assert load_plugin_token(settings) == first
    assert stat.S_IMODE(token_file_path(settings).stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["plugin.token"]


def test_processes_starting_together_agree_on_one_token(tmp_path):
    script = (
        "import sys; from pathlib import Path; from shared.settings import Settings; "
        "from shared.plugin_token import load_plugin_token; "
        "print(load_plugin_token(Settings(data_dir=Path(sys.argv[1]))))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=REPO,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]  # fmt: skip

    tokens = {process.communicate(timeout=30)[0].strip() for process in processes}

    assert len(tokens) == 1 and "" not in tokens


def test_an_empty_file_is_an_error_that_says_what_to_do(tmp_path):
    (tmp_path / "plugin.token").write_text("\n")

    with pytest.raises(SettingsError, match="delete it"):
        load_plugin_token(Settings(data_dir=tmp_path))
