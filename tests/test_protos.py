"""The contracts: every package is versioned and mirrors its path, and every message, field, enum value, service
and method carries a comment, as the style of the project asks."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTOS = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))


def _descriptors(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path / "set.pb"
    include = str(Path(protoc.__file__).parent / "_proto")
    code = protoc.main(
        ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", "--include_source_info", f"--descriptor_set_out={out}", *PROTOS]
    )
    assert code == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _uncommented(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    commented = {
        tuple(location.path)
        for location in file.source_code_info.location
        if location.leading_comments.strip() or location.trailing_comments.strip()
    }
    missing: list[str] = []

    def check(path: tuple[int, ...], name: str) -> None:
        if path not in commented:
            missing.append(f"{file.name}: {name}")

    def message(prefix: tuple[int, ...], msg: descriptor_pb2.DescriptorProto, name: str) -> None:
        check(prefix, name)
        for i, field in enumerate(msg.field):
            check((*prefix, 2, i), f"{name}.{field.name}")
        for i, nested in enumerate(msg.nested_type):
            if not nested.options.map_entry:
                message((*prefix, 3, i), nested, f"{name}.{nested.name}")
        for i, enum in enumerate(msg.enum_type):
            enumeration((*prefix, 4, i), enum, f"{name}.{enum.name}")

    def enumeration(prefix: tuple[int, ...], enum: descriptor_pb2.EnumDescriptorProto, name: str) -> None:
        check(prefix, name)
        for i, value in enumerate(enum.value):
            check((*prefix, 2, i), f"{name}.{value.name}")

    for i, msg in enumerate(file.message_type):
        message((4, i), msg, msg.name)
    for i, enum in enumerate(file.enum_type):
        enumeration((5, i), enum, enum.name)
    for i, service in enumerate(file.service):
        check((6, i), service.name)
        for j, method in enumerate(service.method):
            check((6, i, 2, j), f"{service.name}.{method.name}")
    return missing


def test_every_element_is_commented(tmp_path: Path) -> None:
    files = [f for f in _descriptors(tmp_path).file if f.name in PROTOS]
    assert len(files) == len(PROTOS)
    missing = [name for file in files for name in _uncommented(file)]
    assert missing == []


@pytest.mark.parametrize("proto", PROTOS)
def test_package_mirrors_path_and_is_versioned(proto: str) -> None:
    package_line = next(line for line in (PROTO_ROOT / proto).read_text().splitlines() if line.startswith("package "))
    package = package_line.removeprefix("package ").rstrip(";").strip()
    assert package == ".".join(Path(proto).parent.parts)
    assert package.split(".")[-1].startswith("v")
