"""Build a plugin component with componentize-py (the pinned version).

    python -m edgeward_sdk.build app --world router -o router.wasm

`app` is the module (in the current directory, or `--path DIR`) that defines
`WitWorld = export_router(...)`. The WIT is the one shipped with this package.
A component is ~18 MB (the Python interpreter is inside) and builds in ~6 s."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: The componentize-py this SDK is tested with (`pip install componentize-py==0.25.1`).
COMPONENTIZE_PY = "0.25.1"
WORLDS = ("router", "filter", "scaler")


def wit_dir() -> Path:
    """The WIT package `edgeward:plugin@0.1.0` shipped with the SDK."""
    return Path(__file__).resolve().parent / "wit"


def componentize_py() -> str:
    exe = shutil.which("componentize-py")
    if exe is None:
        raise SystemExit(f"componentize-py not found: pip install componentize-py=={COMPONENTIZE_PY}")
    return exe


def build(app: str, world: str, out: Path, path: Path) -> Path:
    if world not in WORLDS:
        raise SystemExit(f"unknown world {world!r}: one of {', '.join(WORLDS)}")
    exe = componentize_py()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split()
    if version[-1:] != [COMPONENTIZE_PY]:
        print(
            f"warning: componentize-py {' '.join(version[1:]) or '?'}; this SDK is tested with {COMPONENTIZE_PY}",
            file=sys.stderr,
        )
    sdk_root = Path(__file__).resolve().parent.parent
    cmd = [exe, "-d", str(wit_dir()), "-w", world, "componentize", app,
           "-p", str(path), "-p", str(sdk_root), "-o", str(out)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgeward_sdk.build", description=__doc__.splitlines()[0])
    p.add_argument("app", help="the module defining WitWorld, e.g. `app` for app.py")
    p.add_argument("--world", "-w", default="router", choices=WORLDS)
    p.add_argument("--out", "-o", default=None, help="output .wasm (default: <app>.wasm)")
    p.add_argument("--path", "-p", default=".", help="directory holding the app module")
    a = p.parse_args(argv)
    out = Path(a.out or f"{a.app}.wasm")
    try:
        build(a.app, a.world, out, Path(a.path))
    except subprocess.CalledProcessError as e:
        print(f"componentize-py failed (exit {e.returncode})", file=sys.stderr)
        return 1
    print(f"built {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
