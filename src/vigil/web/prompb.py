"""Remote-write 1.0 protobuf messages, built at runtime (no protoc, no generated code).

Two views of the same wire format are built from hand-written descriptors:

- `WriteRequest` (package ``prometheus``), the real schema, used to encode and to
  decode label pairs of series seen for the first time;
- `FastWriteRequest` (and `KeyWriteRequest`, the same without samples), identical
  on the wire except that a series' labels are read as opaque ``bytes`` (each one
  a serialized `Label`). The receiver keys its series cache on those bytes, so a
  series already seen costs no string decoding;
- `SplitWriteRequest`, where each series is one opaque ``bytes`` field: a request
  split into its series in C, for `rw_decode.scan`.

Both parse in C with protobuf's upb backend.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _field(msg: Any, name: str, number: int, ftype: int, label: int, type_name: str = "") -> None:
    f = msg.field.add()
    f.name = name
    f.number = number
    f.type = ftype
    f.label = label
    if type_name:
        f.type_name = type_name


def _build_split() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto()
    fd.name = "vigil/splitprompb/remote.proto"
    fd.package = "vigil.splitprompb"
    fd.syntax = "proto3"
    wr = fd.message_type.add()
    wr.name = "WriteRequest"
    _field(wr, "timeseries", 1, _F.TYPE_BYTES, _F.LABEL_REPEATED)
    _field(wr, "metadata", 3, _F.TYPE_BYTES, _F.LABEL_REPEATED)
    return fd


def _build_file(
    package: str, fast: bool, keys_only: bool = False
) -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto()
    fd.name = f"vigil/{package.replace('.', '/')}/remote.proto"
    fd.package = package
    fd.syntax = "proto3"
    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    p = "." + package

    sample = fd.message_type.add()
    sample.name = "Sample"
    _field(sample, "value", 1, _F.TYPE_DOUBLE, opt)
    _field(sample, "timestamp", 2, _F.TYPE_INT64, opt)

    label = fd.message_type.add()
    label.name = "Label"
    _field(label, "name", 1, _F.TYPE_STRING, opt)
    _field(label, "value", 2, _F.TYPE_STRING, opt)

    ts = fd.message_type.add()
    ts.name = "TimeSeries"
    if fast:
        _field(ts, "labels", 1, _F.TYPE_BYTES, rep)
    else:
        _field(ts, "labels", 1, _F.TYPE_MESSAGE, rep, p + ".Label")
    if not keys_only:
        _field(ts, "samples", 2, _F.TYPE_MESSAGE, rep, p + ".Sample")
    # Exemplars (3) and histograms (4) are not stored yet; protobuf skips them.

    meta = fd.message_type.add()
    meta.name = "MetricMetadata"
    _field(meta, "type", 1, _F.TYPE_INT32, opt)  # an enum on the wire: a varint
    _field(meta, "metric_family_name", 2, _F.TYPE_STRING, opt)
    _field(meta, "help", 4, _F.TYPE_STRING, opt)
    _field(meta, "unit", 5, _F.TYPE_STRING, opt)

    wr = fd.message_type.add()
    wr.name = "WriteRequest"
    _field(wr, "timeseries", 1, _F.TYPE_MESSAGE, rep, p + ".TimeSeries")
    _field(wr, "metadata", 3, _F.TYPE_MESSAGE, rep, p + ".MetricMetadata")
    return fd


def _classes(package: str, fast: bool, keys_only: bool = False) -> dict[str, Any]:
    # A private pool: never collides with another copy of prometheus.proto that some
    # other library may have registered in the default pool.
    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(_build_file(package, fast, keys_only))
    return {
        name: message_factory.GetMessageClass(fd.message_types_by_name[name])
        for name in ("Sample", "Label", "TimeSeries", "MetricMetadata", "WriteRequest")
    }


_STD = _classes("prometheus", fast=False)
_FAST = _classes("vigil.fastprompb", fast=True)

WriteRequest: Any = _STD["WriteRequest"]
TimeSeries: Any = _STD["TimeSeries"]
Label: Any = _STD["Label"]
Sample: Any = _STD["Sample"]
FastWriteRequest: Any = _FAST["WriteRequest"]
KeyWriteRequest: Any = _classes("vigil.keyprompb", fast=True, keys_only=True)["WriteRequest"]
"""Series carry only their label bytes: after `DiscardUnknownFields()` a series
re-serializes to exactly its labels, the receiver's cache key."""


def _split_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(_build_split())
    return message_factory.GetMessageClass(fd.message_types_by_name["WriteRequest"])


SplitWriteRequest: Any = _split_class()
"""`timeseries` holds each series' serialized bytes; nothing inside them is parsed."""
