"""`plc-gateway` with a timestamp on every FINS request and every command, for benchmarks/write_batch_trace.py.

Runs the unchanged gateway (services.plc_gateway.__main__) with three wrappers installed first; each appends one
JSON line to $GATEWAY_TRACE_FILE, stamped with time.monotonic() (CLOCK_MONOTONIC: the same clock in every
process on the host, so the lines line up with the simulator's own trace):

- {"ev": "call" | "ret", "t", "code", "in_command"}: a FINS request asked of the client / its reply returned
  (code: the FINS command, e.g. "0104"; in_command: a gateway command held the link when it was asked);
- {"ev": "delivered", "t", "topic"}: paho's thread has a message and hands it to the asyncio loop;
- {"ev": "handle", "t"}: a command message reached the gateway's command loop;
- {"ev": "reply", "t", "request_id"}: its reply was published.

    GATEWAY_TRACE_FILE=/tmp/gw.jsonl .venv/bin/python -m benchmarks.traced_gateway
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.plc_gateway import __main__ as gateway_main
from services.plc_gateway.app import Gateway
from shared.fins.client import FinsClient
from shared.fins.frames import Reply, Request
from shared.mqtt.client import Message

TRACE = open(os.environ["GATEWAY_TRACE_FILE"], "a", buffering=1)  # noqa: SIM115 - open for the process's life
_gateway: list[Gateway] = []


def emit(**fields: Any) -> None:
    TRACE.write(json.dumps(fields) + "\n")


def install() -> None:
    execute = FinsClient._execute
    init = Gateway.__init__
    handle = Gateway.handle
    reply = Gateway._reply
    to_loop = Gateway._to_loop

    async def traced_execute(self: FinsClient, request: Request, retries: int | None, detail: str) -> Reply:
        code = f"{request.command:04X}"
        in_command = bool(_gateway) and _gateway[0].turns.command_running
        emit(ev="call", t=time.monotonic(), code=code, in_command=in_command)
        try:
            return await execute(self, request, retries, detail)
        finally:
            emit(ev="ret", t=time.monotonic(), code=code, in_command=in_command)

    def traced_init(self: Gateway, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _gateway.append(self)

    async def traced_handle(self: Gateway, msg: Message) -> None:
        emit(ev="handle", t=time.monotonic())
        await handle(self, msg)

    def traced_reply(self: Gateway, name: str, request_id: str | None, *args: Any, **kwargs: Any) -> None:
        reply(self, name, request_id, *args, **kwargs)
        emit(ev="reply", t=time.monotonic(), request_id=request_id)

    def traced_to_loop(self: Gateway, delivery: Any) -> None:
        emit(ev="delivered", t=time.monotonic(), topic=delivery.message.topic)
        to_loop(self, delivery)

    FinsClient._execute = traced_execute  # type: ignore[method-assign]
    Gateway.__init__ = traced_init  # type: ignore[method-assign]
    Gateway.handle = traced_handle  # type: ignore[method-assign]
    Gateway._reply = traced_reply  # type: ignore[method-assign]
    Gateway._to_loop = traced_to_loop  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    gateway_main.main()
