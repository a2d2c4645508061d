"""The work after each Slack ack, as a durable message: the `after_ack` Dramatiq actor.

What a command, click, submission or event does after its ack (Bolt's *lazy listeners*:
the launch's rows, the run message, the enqueue, a `/jobs` answer) is a message on a queue
of its own (`AFTER_ACK_QUEUE`), never work held in the memory of the process that acked.

Sending (the ack half): in the app that acks, every listener's ack function ends by calling
`Sender.send` (`handlers.listeners`, through `Deps.after_ack`), which sends
`after_ack(request_id)` under a new request id, with the request — its body, its headers
and the `playbot_*` context entries the ack half left for the lazy half — in the message's
`playbot_request` option: one round trip to Redis per ack. With
`process_before_response=True` Bolt sends the ack only when the ack function returns, so a
request Slack was told about is in the broker: killing the web process right after an ack
loses nothing. (Nothing of Bolt is replaced: no lazy listener runner, and no deep copy of
the request per ack.) The request travels in an option, not an argument, because Dramatiq's
log lines name a message by its actor and arguments only: the request itself never appears
in a Dramatiq log line, nor in ours. The consumer reads it through Dramatiq's
`CurrentMessage` middleware.

Consuming (`AfterAckConsumer`): the message's request is dispatched to a Bolt app whose
listeners register that work as lazy listeners, as a *lazy-only* request (the two headers
Bolt's AWS Lambda adapter sets for the same purpose), so Bolt routes it to the same
listener and runs only the named lazy function. That app does not verify signatures:
its only input is the queue, written by a process that verified the request (the Slack
request body, with its response_url, is what sits in Redis; Redis must be private).

Where it runs (`AfterAckMode`):
- `BROKER` — `playbot web` / `playbot socket` with REDIS_URL: the message goes to Redis and
  `playbot worker` consumes the queue with threads of their own, apart from the threads that
  run playbooks, so playbook runs can never starve it (`bot.after_ack_worker`).
- `IN_PROCESS` — the embedded default, the console and tests: the same actor on an
  in-process broker private to the runtime, served by a few threads of this process.
- `CONSUMER` — the runtime of `playbot worker`: its app is the one requests are dispatched to.
Every mode but CONSUMER builds two apps from the same listeners: the one that acks (and
sends), and the one work is dispatched to (in BROKER mode only for the fallback below).

Delivery guarantees (Redis): a message whose consumer dies (SIGKILL, OOM) goes back to the
queue once that worker's heartbeat is older than PLAYBOT_REDELIVERY_SECONDS (Dramatiq's
Redis broker requeues the unacked messages of dead workers). The store (`RequestStore`)
counts deliveries as each begins: a repeated delivery runs the lazy function again with
`playbot_redelivery` set in its context, so the handlers finish what the first one left
undone without answering twice (a launch finds its jobs by request key, posts the run
message only if none is recorded and enqueues only what is not enqueued); a delivery of
work that already finished is skipped.
When the broker cannot be reached at ack time the work is dispatched on this process's
threads instead (not durable, logged), so the user is still answered.
"""

from __future__ import annotations

import enum
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage
from slack_bolt import App
from slack_bolt.request import BoltRequest

from bot.background import InFlight

log = logging.getLogger(__name__)

AFTER_ACK_QUEUE = "playbot_after_ack"
ACTOR_NAME = "after_ack"
# A backstop only: handlers bound their own Slack and database calls.
TIME_LIMIT_MS = 5 * 60 * 1000
STORE_RETRIES = 5
LAZY_ONLY_HEADER = "x-slack-bolt-lazy-only"  # what Bolt's Lambda adapter sets, and reads back
LAZY_NAME_HEADER = "x-slack-bolt-lazy-function-name"
FORWARDED_CONTEXT_PREFIX = "playbot_"  # context the ack half leaves for the lazy half
REDELIVERY_KEY = "playbot_redelivery"  # set in the context of a repeated delivery
REQUEST_OPTION = "playbot_request"  # the message option that carries the stored request
STORE_TTL_SECONDS = 24 * 3600
STORE_KEY = "playbot:after_ack:{}"


class AfterAckMode(enum.Enum):
    """Where the work after this runtime's acks goes (see the module docstring)."""

    IN_PROCESS = "in_process"
    BROKER = "broker"
    CONSUMER = "consumer"


# --- the stored request ---------------------------------------------------------------------


def encode_request(name: str, request: BoltRequest) -> str:
    """What the consumer needs to dispatch lazy function `name` of `request`, as JSON."""
    return json.dumps({
        "name": name,
        "mode": request.mode,
        "body": request.raw_body if request.mode == "http" else request.body,
        "headers": {key: list(values) for key, values in request.headers.items()},
        "context": {key: value for key, value in request.context.items()
                    if key.startswith(FORWARDED_CONTEXT_PREFIX)},
    })


def decode_request(payload: str, *, redelivered: bool) -> tuple[str, BoltRequest]:
    """The lazy function's name and the lazy-only request to dispatch for it."""
    data = json.loads(payload)
    headers = dict(data["headers"])
    headers[LAZY_ONLY_HEADER] = ["1"]
    headers[LAZY_NAME_HEADER] = [data["name"]]
    context = dict(data["context"])
    if redelivered:
        context[REDELIVERY_KEY] = True
    return data["name"], BoltRequest(body=data["body"], headers=headers, context=context,
                                     mode=data["mode"])


class RequestStore(Protocol):
    """How many times each request's work was begun, and whether it finished."""

    def begin(self, request_id: str) -> tuple[str | None, int] | None:
        """(stored payload or None, delivery number) of a request to work on, or None when
        its work already finished."""

    def finish(self, request_id: str) -> None: ...


class RedisRequestStore:
    """Deliveries in Redis hashes (`playbot:after_ack:<id>`), kept a day at most: a count,
    and a `done` mark once the work finished. (A message sent by an earlier version carries
    no request: its request sits in the hash's `request` field until the work is done.)"""

    def __init__(self, client: redis.Redis, ttl: int = STORE_TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl

    def begin(self, request_id: str) -> tuple[str | None, int] | None:
        key = STORE_KEY.format(request_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(key, "deliveries", 1)
        pipe.hmget(key, "request", "done")
        pipe.expire(key, self.ttl)
        deliveries, (payload, done), _ = pipe.execute()
        if done:
            return None
        return (payload.decode() if payload is not None else None), int(deliveries)

    def finish(self, request_id: str) -> None:
        key = STORE_KEY.format(request_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(key, "request")
        pipe.hset(key, "done", "1")
        pipe.execute()


class MemoryRequestStore:
    """The in-process store: its broker never delivers a message twice (and nothing
    survives the process), so every delivery is the first."""

    def begin(self, request_id: str) -> tuple[str | None, int] | None:
        return None, 1

    def finish(self, request_id: str) -> None:
        pass


# --- the actor -------------------------------------------------------------------------------


Run = Callable[[str, "str | None"], None]  # (request id, the request the message carried)
_runs: dict[int, Run] = {}  # the consumer of each broker in this process


def declare_actor(broker: dramatiq.Broker, run: Run) -> dramatiq.Actor[Any, Any]:
    """Declare `after_ack(request_id)` on `broker` (once), and make it do
    `run(request_id, payload)` in this process (a consumer's `run` replaces a sender's).
    The broker needs Dramatiq's CurrentMessage middleware: the payload is read from the
    message being processed."""
    _runs[id(broker)] = run
    if ACTOR_NAME in broker.actors:
        return broker.get_actor(ACTOR_NAME)
    key = id(broker)

    def after_ack(request_id: str) -> None:
        message = CurrentMessage.get_current_message()
        payload = message.options.get(REQUEST_OPTION) if message is not None else None
        _runs[key](request_id, payload)

    return dramatiq.actor(after_ack, broker=broker, actor_name=ACTOR_NAME,
                          queue_name=AFTER_ACK_QUEUE, max_retries=STORE_RETRIES,
                          retry_when=_store_unreachable, min_backoff=500, max_backoff=5000,
                          time_limit=TIME_LIMIT_MS)


def _store_unreachable(retries: int, exc: BaseException) -> bool:
    """Retry a message only when the store could not be read (its work never began)."""
    return retries < STORE_RETRIES and isinstance(exc, StoreUnreachable)


class StoreUnreachable(Exception):
    """The request store (Redis) could not be read; the message is retried."""


def _no_consumer_here(request_id: str, payload: str | None) -> None:
    log.error("after-ack work %s reached a process with no consumer; it is dropped", request_id)


def declare_sender(broker: dramatiq.Broker) -> dramatiq.Actor[Any, Any]:
    """The actor as a process that only sends it (the web process) declares it; a consumer
    already declared in this process keeps its place."""
    if ACTOR_NAME in broker.actors:
        return broker.get_actor(ACTOR_NAME)
    return declare_actor(broker, _no_consumer_here)


class Sender:
    """The ack half: `send(name, request)` sends `after_ack` for lazy function `name`,
    the request in the message; the listeners call it inside the ack function
    (`handlers.listeners`), so it happens before Bolt sends the ack.

    fallback(payload): does the work in this process when the broker cannot take it.
    in_flight: counts what was sent until its consumer is done (the in-process path).
    """

    def __init__(self, actor: dramatiq.Actor[Any, Any],
                 fallback: Callable[[str], None], *,
                 on_fallback: Callable[[], None] | None = None,
                 in_flight: InFlight | None = None) -> None:
        self.actor = actor
        self.fallback = fallback
        self.on_fallback = on_fallback
        self.in_flight = in_flight

    def send(self, name: str, request: BoltRequest) -> None:
        payload = encode_request(name, request)
        request_id = uuid.uuid4().hex
        if self.in_flight is not None:
            self.in_flight.started()
        try:
            self.actor.send_with_options(kwargs={"request_id": request_id},
                                         **{REQUEST_OPTION: payload})
        except (redis.RedisError, dramatiq.errors.BrokerError, OSError) as exc:
            if self.in_flight is not None:
                self.in_flight.finished()
            log.warning("after-ack work %s could not be queued (%s: %s); it runs in this "
                        "process instead", name, type(exc).__name__, exc)
            if self.on_fallback is not None:
                self.on_fallback()
            self.fallback(payload)


# --- the consumer ----------------------------------------------------------------------------


class AfterAckConsumer:
    """Runs stored requests' lazy functions on `app` (built with request verification off).

    Never raises for a request's own failure (handlers report theirs to the user; anything
    else is logged by name and id — never the request), so the broker does not log or keep
    the message; an interrupt (time limit, shutdown) propagates.
    """

    def __init__(self, app: App, store: RequestStore,
                 in_flight: InFlight | None = None) -> None:
        self.app = app
        self.store = store
        self.in_flight = in_flight

    def run(self, request_id: str, payload: str | None = None) -> None:
        """Do the work of the request the message carried (`payload`; None: a message of an
        earlier version, whose request is in the store)."""
        try:
            self._run(request_id, payload)
        finally:
            if self.in_flight is not None:
                self.in_flight.finished()

    def _run(self, request_id: str, carried: str | None) -> None:
        try:
            begun = self.store.begin(request_id)
        except (redis.RedisError, OSError) as exc:
            log.error("after-ack work %s: the request store is unreachable (%s); retried",
                      request_id, exc)
            raise StoreUnreachable(str(exc)) from None
        if begun is None:
            log.info("after-ack work %s was already done; delivery skipped", request_id)
            return
        stored, delivery = begun
        payload = carried if carried is not None else stored
        if payload is None:
            log.warning("after-ack work %s carries no request and none is stored (expired); "
                        "nothing to do", request_id)
            return
        if delivery > 1:
            log.warning("after-ack work %s: delivery %d, finishing what an earlier one left",
                        request_id, delivery)
        self.dispatch(payload, redelivered=delivery > 1, label=request_id)
        self.store.finish(request_id)

    def dispatch(self, payload: str, *, redelivered: bool = False, label: str = "-") -> None:
        """Run the stored request's lazy function on the app (never raises an Exception)."""
        name = "?"
        try:
            name, request = decode_request(payload, redelivered=redelivered)
            response = self.app.dispatch(request)
            if response.status != 200:
                log.error("after-ack work %s (%s) was refused by the app: HTTP %s", label,
                          name, response.status)
        except Exception as exc:  # noqa: BLE001 - the listeners' own boundary failed: log, go on
            log.error("after-ack work %s (%s) failed: %s", label, name, type(exc).__name__,
                      exc_info=True)


class InProcessAfterAck:
    """The embedded path: the actor on a private in-process broker, `threads` threads
    dispatching to `app` in this process, and a count of the work not done yet."""

    def __init__(self, threads: int) -> None:
        from dramatiq.brokers.stub import StubBroker
        from dramatiq.middleware import Retries, TimeLimit

        self.in_flight = InFlight()
        self.store = MemoryRequestStore()
        self.broker = StubBroker(middleware=[TimeLimit(), Retries(max_retries=0),
                                              CurrentMessage()])
        self.consumer: AfterAckConsumer | None = None
        self.actor = declare_actor(self.broker, self._run)
        self.threads = threads
        self.worker: dramatiq.Worker | None = None

    def serve(self, app: App) -> None:
        """Start the threads dispatching to `app`."""
        self.consumer = AfterAckConsumer(app, self.store, self.in_flight)
        self.broker.emit_after("process_boot")  # TimeLimit's watchdog, as Dramatiq's CLI does
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.threads,
                                      worker_timeout=100)
        self.worker.start()

    def _run(self, request_id: str, payload: str | None) -> None:
        assert self.consumer is not None, "serve(app) starts the consumer"
        self.consumer.run(request_id, payload)

    def wait_idle(self, timeout: float) -> bool:
        return self.in_flight.wait_idle(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Let the work in flight finish (bounded), then stop the threads."""
        self.in_flight.wait_idle(timeout)
        if self.worker is not None:
            self.worker.stop(timeout=5000)
        self.broker.close()
