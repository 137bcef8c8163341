"""Pure encoders: records in, bytes or dicts out. No I/O, no clocks, no globals mutated."""

from pontem_async.encoding.jsonl import encode_batch, encode_line, record_to_dict, register_kind

__all__ = ["encode_batch", "encode_line", "record_to_dict", "register_kind"]
