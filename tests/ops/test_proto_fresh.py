"""The committed gRPC modules are what ``make proto`` makes from ops/rpc/runner.proto."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = ("runner_pb2.py", "runner_pb2.pyi", "runner_pb2_grpc.py")


def test_generated_modules_match_the_proto(tmp_path: Path) -> None:
    (tmp_path / "ops" / "rpc").mkdir(parents=True)
    shutil.copy(REPO / "ops" / "rpc" / "runner.proto", tmp_path / "ops" / "rpc" / "runner.proto")

    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--pyi_out=.",
            "--grpc_python_out=.",
            "ops/rpc/runner.proto",
        ],
        cwd=tmp_path,
        check=True,
    )

    stale = [
        name
        for name in GENERATED
        if (tmp_path / "ops" / "rpc" / name).read_bytes()
        != (REPO / "ops" / "rpc" / name).read_bytes()
    ]
    assert not stale, f"run `make proto` and commit: {stale} differ from ops/rpc/runner.proto"
