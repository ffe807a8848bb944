"""The client wire protocol, sans I/O: shared by the server and the Python client.

Nothing here touches a socket or an event loop. The byte formats are those of the original
``websocket-cross-server-adapter`` (JSON text frames, the ``""`` heartbeat), so the original
JavaScript ``WebSocketConnector`` works unchanged against a wsfleet server.
"""

from wsfleet.protocol.codec import (
    MISSING,
    Ack,
    ClientEvent,
    Heartbeat,
    PushedEvent,
    decode_client_frame,
    decode_server_frame,
    encode_ack,
    encode_client_event,
    encode_event,
    is_valid_callback_id,
)
from wsfleet.protocol.codes import RESERVED_FOR_CLIENT, CloseCode, is_terminal_close
from wsfleet.protocol.errors import EncodeError, FrameError, WsfleetError
from wsfleet.protocol.params import RequestParams, parse_ws_request_params
from wsfleet.protocol.wsframe import build_close_frame, build_text_frame

__all__ = [
    "MISSING",
    "RESERVED_FOR_CLIENT",
    "Ack",
    "ClientEvent",
    "CloseCode",
    "EncodeError",
    "FrameError",
    "Heartbeat",
    "PushedEvent",
    "RequestParams",
    "WsfleetError",
    "build_close_frame",
    "build_text_frame",
    "decode_client_frame",
    "decode_server_frame",
    "encode_ack",
    "encode_client_event",
    "encode_event",
    "is_terminal_close",
    "is_valid_callback_id",
    "parse_ws_request_params",
]
