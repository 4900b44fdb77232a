"""A forger on the broker: it sees every gateway command and races the gateway with a reply that carries the
command's request id but names another command, echoes other arguments, or none. A service that matched replies
by request id alone would apply it; ours must ignore it and act on the gateway's own reply.

What it can do depends on the broker. The soak's broker is anonymous with no ACL, so the forger may read every
command and publish onto every reply topic: more than the deployed ACL lets any user but the gateway do
(mosquitto/acl: only the gateway publishes under `{root}/reply/`). A forged reply that repeated the command
and its arguments exactly is indistinguishable from the gateway's; only that ACL stops it, so it is not sent
here: this checks the services' second line, the command-and-arguments match.

Every forged reply carries FORGED in its code or message, so one that was applied leaves a trace in the database
(an audit row's code or reason, an ack_code, a last_error): `applied_traces` counts them.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shared.mqtt.payloads import CommandBase, PayloadError, command_args, parse_command
from tests.support.system import System

# Every gateway command model by its name (each carries the name of its topic, cmd/<command>).
COMMAND_MODELS = {model.command: model for model in CommandBase.__subclasses__()}
FORGED = "forged"
VARIANTS = ("other_command", "other_args", "no_args")


def _altered(value: Any, rng: random.Random) -> Any:
    """The same kind of value, different: what a reply to another request (or a lie) would echo."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return round(value + 0.5, 2)
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1:] != "0" else "1") if value else "x"
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        return {**value, key: _altered(value[key], rng)}
    return "x"


def forged_reply(
    command: str, request_id: str, args: dict[str, Any], variant: str, rng: random.Random
) -> dict[str, Any]:
    """`args` are the command's arguments as the gateway echoes them; the forged reply never echoes them all."""
    reply: dict[str, Any] = {"request_id": request_id, "command": command, "args": args}
    if variant == "other_command":
        reply["command"] = rng.choice([c for c in COMMAND_MODELS if c != command])
    elif variant == "other_args":
        reply["args"] = _altered(args, rng) if args else {"slot": 1}
    else:
        del reply["args"]
    # Accepted, it would be a success the PLC never gave, or a refusal that parks the batch for a person.
    if rng.random() < 0.7:
        reply.update(ok=True, code=FORGED, message=f"{FORGED} reply")
    else:
        reply.update(ok=False, code="conflict", message=f"{FORGED} refusal")
    return reply


class Forger:
    """Answers a share of the commands first, from its own MQTT client (a thread of paho's)."""

    def __init__(self, s: System, root: str, seed: int, share: float = 0.5) -> None:
        self.rng = random.Random(seed)
        self.share = share
        self.sent: Counter[str] = Counter()  # "<command>/<variant>" -> forged replies published
        self._lock = threading.Lock()
        self._filter = f"{root}/cmd/+"  # commands only: their replies are one level deeper
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4().hex[:6]}")
        self.client.reconnect_delay_set(0.2, 2)  # back soon after each broker restart of the soak
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self._filter, 1)
        self.client.on_message = self._on_message
        self.client.connect(s.broker.host, s.broker.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        command = msg.topic.rsplit("/", 1)[-1]
        try:
            # The arguments exactly as the gateway echoes them (envelope fields such as ts and source are not
            # arguments: a reply that differed only there would be a correct echo, not a forgery).
            cmd = parse_command(COMMAND_MODELS[command], msg.payload)
        except (KeyError, PayloadError):
            return
        if not cmd.reply_to or not cmd.request_id:
            return
        with self._lock:
            if self.rng.random() >= self.share:
                return
            variant = self.rng.choice(VARIANTS)
            reply = forged_reply(command, cmd.request_id, command_args(cmd), variant, self.rng)
            self.sent[f"{command}/{variant}"] += 1
        client.publish(cmd.reply_to, json.dumps(reply).encode(), qos=1)

    def total(self) -> int:
        with self._lock:
            return sum(self.sent.values())

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def applied_traces(s: System) -> int:
    """Rows that show a forged reply was acted on (all must be 0)."""
    pattern = f"%{FORGED}%"
    return int(
        s.sql(
            "SELECT (SELECT count(*) FROM audit_event WHERE detail::text ILIKE :p)"
            " + (SELECT count(*) FROM mo_batch WHERE last_error ILIKE :p)"
            " + (SELECT count(*) FROM mo_histories WHERE note ILIKE :p)"
            " + (SELECT count(*) FROM manual_weighing WHERE ack_code ILIKE :p OR last_error ILIKE :p)"
            " + (SELECT count(*) FROM equipment_failure WHERE last_error ILIKE :p)",
            p=pattern,
        )[0][0]
    )


def refused_in_logs(s: System) -> int:
    """Forged replies that reached a request still waiting for its answer and were refused, as the services
    logged them (a forged reply that arrives after the real one finds nothing waiting and is dropped silently)."""
    marks = ("reply does not answer the command it names", "reply ignored: it does not answer our")
    return sum(s.procs[name].log().count(mark) for name in ("mo_planner", "failure_monitor") for mark in marks)
