"""Agent sessions as data: the request format, edits (attribution line on/off), rendering."""

from labkit.sessions.blocks import block_digest, block_placeholder
from labkit.sessions.edits import (
    HEADER_LINE,
    VARIANTS,
    add_timestamp,
    apply_variant,
    move_header_to_end,
    shuffle_tools,
    with_attribution,
)
from labkit.sessions.format import (
    SessionFormatError,
    load_requests,
    read_json_items,
    request_shape,
    validate_request,
)
from labkit.sessions.header import (
    ATTRIBUTION_ENV,
    EXAMPLE_HEADER,
    HEADER_NAME,
    attribution_enabled,
    billing_header,
    random_cch,
)
from labkit.sessions.render import RenderedRequest, render_request, render_session

__all__ = [
    "ATTRIBUTION_ENV",
    "EXAMPLE_HEADER",
    "HEADER_LINE",
    "HEADER_NAME",
    "VARIANTS",
    "RenderedRequest",
    "SessionFormatError",
    "add_timestamp",
    "apply_variant",
    "attribution_enabled",
    "billing_header",
    "block_digest",
    "block_placeholder",
    "load_requests",
    "move_header_to_end",
    "random_cch",
    "read_json_items",
    "render_request",
    "render_session",
    "request_shape",
    "shuffle_tools",
    "validate_request",
    "with_attribution",
]
