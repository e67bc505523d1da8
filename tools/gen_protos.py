"""Generates the Python gRPC and protobuf stubs (with type stubs) from protos/ into build/gen/python.

Stubs are build output, never committed. The virtual environment finds them through a .pth file written here.
"""

from __future__ import annotations

import shutil
import site
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "build" / "gen" / "python"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    # Regular packages, so that mypy and importers resolve tend.<area>.v1 without namespace-package guessing.
    for folder in [OUT / "tend", *(p for p in (OUT / "tend").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
        (folder / "py.typed").touch()
    pth = Path(site.getsitepackages()[0]) / "tend_protos.pth"
    pth.write_text(f"{OUT}\n")
    print(f"generated {len(protos)} proto files into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
