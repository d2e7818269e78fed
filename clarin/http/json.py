"""One msgspec encoder for the whole process, and cached typed decoders."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

encoder = msgspec.json.Encoder()
encode = encoder.encode
decode_any = msgspec.json.Decoder().decode


@cache
def decoder_for(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type)
