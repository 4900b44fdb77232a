"""A gateway command sent by an operator front end (edgectl, the console): the request body with its private
reply topic and expiry, and how its reply is judged. One implementation, so both front ends send `arm` the
same way and read the same reply codes the same way."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from shared.mqtt.payloads import answers, iso, utc_now
from shared.mqtt.topics import COMMAND_SENDERS, Topics

# Reply codes that mean "the gateway could not talk to the PLC", not "the PLC said no".
UNREACHABLE_CODES = frozenset({"plc_unreachable"})


@dataclass(frozen=True)
class CommandRequest:
    command: str
    topic: str
    reply_to: str
    request_id: str
    args: dict[str, Any]
    body: dict[str, Any]

    def answered_by(self, reply: dict[str, Any]) -> bool:
        return answers(reply, self.request_id, self.command, self.args)


def command_request(
    topics: Topics, sender: str, command: str, args: dict[str, Any], timeout_s: float
) -> CommandRequest:
    if sender not in COMMAND_SENDERS.get(command, ()):
        raise ValueError(f"{sender} may not send {command} (shared/mqtt/topics.py COMMAND_SENDERS)")
    request_id = f"{sender}-{uuid.uuid4().hex}"
    reply_to = f"{topics.reply_prefix(sender)}/{uuid.uuid4().hex}"
    # expires_at: if the gateway is down and picks the command up much later, it must not act on it then.
    expires = iso(utc_now() + dt.timedelta(seconds=timeout_s))
    body = {"request_id": request_id, "reply_to": reply_to, "expires_at": expires, **args}
    return CommandRequest(command, topics.cmd(command), reply_to, request_id, dict(args), body)
