"""A batch-capable copy of a single-window TFLite model, for one invoke per tick.

Converters bake the batch size 1 into the constant shape operand of RESHAPE ops
(e.g. [1, 1, 128, 3]), so resizing the input to N windows fails when the graph is prepared.
`unpin_reshape_batch` rewrites that leading 1 to -1 (inferred) in a copy of the model; every
other byte is untouched, the weights included. Callers must still check that the batched
graph gives exactly the per-window outputs (models.Classifier does, and falls back to
per-window inference otherwise).

Only the few flatbuffer fields this needs are read (tflite/schema/schema.fbs field order).
"""

from __future__ import annotations

import struct

RESHAPE = 22  # BuiltinOperator.RESHAPE
INT32 = 2  # TensorType.INT32

# Field (vtable slot) numbers from schema.fbs.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 1, 2, 4
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_BUILTIN = 0, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_OPERATORS = 0, 3
_TENSOR_TYPE, _TENSOR_BUFFER = 1, 2
_OPERATOR_OPCODE_INDEX, _OPERATOR_INPUTS = 0, 1
_BUFFER_DATA = 0


class _Reader:
    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def u32(self, pos: int) -> int:
        return int(struct.unpack_from("<I", self.data, pos)[0])

    def field(self, table: int, slot: int) -> int | None:
        """Absolute position of a table's field, None when absent."""
        vtable = table - int(struct.unpack_from("<i", self.data, table)[0])
        vtable_size = int(struct.unpack_from("<H", self.data, vtable)[0])
        at = 4 + 2 * slot
        if at >= vtable_size:
            return None
        offset = int(struct.unpack_from("<H", self.data, vtable + at)[0])
        return table + offset if offset else None

    def scalar(self, table: int, slot: int, fmt: str, default: int = 0) -> int:
        pos = self.field(table, slot)
        return default if pos is None else int(struct.unpack_from(fmt, self.data, pos)[0])

    def vector(self, table: int, slot: int) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        pos = self.field(table, slot)
        if pos is None:
            return 0, 0
        start = pos + self.u32(pos)
        return start + 4, self.u32(start)

    def tables(self, table: int, slot: int) -> list[int]:
        start, length = self.vector(table, slot)
        return [start + 4 * i + self.u32(start + 4 * i) for i in range(length)]


def unpin_reshape_batch(model: bytes) -> bytes | None:
    """The model with its RESHAPE shape constants' leading 1 made -1, or None when there is
    nothing to rewrite (or the file is not laid out as expected)."""
    data = bytearray(model)
    try:
        r = _Reader(data)
        root = r.u32(0)
        codes = [
            max(
                r.scalar(code, _OPCODE_DEPRECATED_BUILTIN, "<b"),
                r.scalar(code, _OPCODE_BUILTIN, "<i"),
            )
            for code in r.tables(root, _MODEL_OPERATOR_CODES)
        ]
        buffers = r.tables(root, _MODEL_BUFFERS)
        patched = 0
        for subgraph in r.tables(root, _MODEL_SUBGRAPHS):
            tensors = r.tables(subgraph, _SUBGRAPH_TENSORS)
            for op in r.tables(subgraph, _SUBGRAPH_OPERATORS):
                if codes[r.scalar(op, _OPERATOR_OPCODE_INDEX, "<I")] != RESHAPE:
                    continue
                inputs, count = r.vector(op, _OPERATOR_INPUTS)
                if count < 2:
                    continue
                shape = tensors[int(struct.unpack_from("<i", data, inputs + 4)[0])]
                if r.scalar(shape, _TENSOR_TYPE, "<b") != INT32:
                    continue
                start, size = r.vector(buffers[r.scalar(shape, _TENSOR_BUFFER, "<I")], _BUFFER_DATA)
                if size >= 4 and struct.unpack_from("<i", data, start)[0] == 1:
                    struct.pack_into("<i", data, start, -1)
                    patched += 1
    except (struct.error, IndexError):
        return None
    return bytes(data) if patched else None
