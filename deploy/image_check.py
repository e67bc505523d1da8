"""Build-time check of the Tend image, run by deploy/Dockerfile: a packaging mistake fails the build, not a deployment.

Checks that every role's console script is installed, that the generated stubs import through the .pth file, and that
every module of every package imports (a third-party package missing from the runtime pins in requirements.txt shows
here, not at the first request that needs it). With `--source DIR` (the build stage, where the repository is), it also
checks that each installed migrations package holds every SQL file of its source folder: setuptools leaves non-Python
files out of a wheel unless the package data names them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import sys
from importlib import resources
from pathlib import Path

SERVICES = ("identity", "checkin", "indicators", "notify", "audit", "portal")
# Services that own a database, so have migrations and a `migrate` role.
WITH_DATABASE = ("identity", "checkin", "indicators", "notify", "audit")
STUB_MODULES = ("tend.common.v1.event_pb2", "tend.identity.v1.identity_pb2_grpc", "tend.checkin.v1.checkin_pb2_grpc")


def unimportable_modules(package: str) -> list[str]:
    try:
        root = importlib.import_module(package)
    except ImportError as exc:
        return [f"{package} does not import: {exc}"]
    found = []
    for module in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        try:
            importlib.import_module(module.name)
        except ImportError as exc:
            found.append(f"{module.name} does not import: {exc}")
    return found


def missing_sql_files(package: str, source: Path) -> list[str]:
    """SQL files in the package's source folder (libs/*/src/... or services/*/src/...) that were not installed."""
    relative = package.replace(".", "/")
    in_source = {f.name for folder in source.glob(f"*/*/src/{relative}") for f in folder.glob("*.sql")}
    try:
        installed = {f.name for f in resources.files(package).iterdir() if f.name.endswith(".sql")}
    except ModuleNotFoundError:
        return sorted(in_source)
    return sorted(in_source - installed)


def problems(source: Path | None) -> list[str]:
    found = [
        f"console script tend-{name} is not installed" for name in SERVICES if shutil.which(f"tend-{name}") is None
    ]
    for package in ("tend_common", *(f"tend_{name}" for name in SERVICES)):
        found.extend(unimportable_modules(package))
    for module in STUB_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            found.append(f"generated stub {module} does not import: {exc}")
    if source is not None:
        for package in ("tend_common.migrations", *(f"tend_{name}.migrations" for name in WITH_DATABASE)):
            missing = missing_sql_files(package, source)
            if missing:
                found.append(
                    f"{package} was installed without {', '.join(missing)}: add 'migrations/*.sql' to the package"
                    " data in its pyproject.toml"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, help="the repository, to compare installed migrations against")
    args = parser.parse_args(argv)
    found = problems(args.source)
    for problem in found:
        print(f"image check: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
