"""Abuse detection: labelled attack scenarios among normal users, against real gateways.

For each scenario a fresh stack is started — the Polder Bank demo upstream and one or three
``dijk serve`` processes running the demo configuration (three share one Redis) — and a
population of normal users is simulated alongside the attacker, requests interleaved:

- login users, each from their own address, logging in (one in five with a typo first);
- API consumers (their own keys, from their own server address) reading their own
  accounts, listing, searching, in bursts.

Scenarios: distributed low-and-slow credential stuffing (1-2 attempts per address, hundreds
of addresses), password spraying, BOLA walks (sequential and random ids), scraping, a
stolen key used from other countries, path scanning, a compromised key behaving unlike
itself. Printed per scenario: detected or not, attacker requests until detection (a refusal
with the scenario's reason, or an incident on the admin API for detectors in ``monitor``),
normal requests flagged (audit records with an ``abuse.*`` reason) and normal users refused.
Then the added cost per request, in process: the abuse stages on a normal request
(memory://) and one observation's Redis round trip.

    .venv/bin/python -m bench.abuse --quick              # about a minute
    .venv/bin/python -m bench.abuse                      # larger scenarios
    .venv/bin/python -m bench.abuse --redis redis://127.0.0.1:6379/15

Writes ``bench/results/abuse-<UTC stamp>.json`` and ``abuse-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import random
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):  # run as a file: python bench/abuse.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    RESULTS_DIR,
    ROOT,
    Service,
    ServiceGroup,
    format_table,
    free_port,
    machine_info,
    sigterm_as_interrupt,
    utc_timestamp,
    write_results,
)
from dijk.demo.data import generate_customers
from dijk.demo.upstream import DEMO_PASSWORD

HOST = "127.0.0.1"
ADMIN_TOKEN = "bench-abuse-" + secrets.token_hex(8)
PYTHON = sys.executable
# Server addresses of the normal API consumers (one country) and of the stolen key's users.
CONSUMER_ADDRESSES = ["145.1.10.10", "145.1.20.10", "145.1.30.10", "145.1.40.10"]
THIEF_ADDRESSES = ["8.8.8.8", "133.1.1.1", "200.1.1.1", "81.2.69.142"]  # US, JP, BR, GB


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    address: str
    key: str | None = None
    body: dict[str, Any] | None = None
    agent: str = "bank-app/3.1"


@dataclass
class Answer:
    status: int
    reason: str


class Client:
    """Keep-alive connections to every instance; requests go round-robin."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = ports
        self._connections: dict[int, http.client.HTTPConnection] = {}
        self._next = 0

    def send(self, call: Call, request_id: str) -> Answer:
        port = self._ports[self._next % len(self._ports)]
        self._next += 1
        headers = {
            "X-Forwarded-For": call.address,
            "X-Request-Id": request_id,
            "User-Agent": call.agent,
        }
        if call.key:
            headers["X-API-Key"] = call.key
        payload = None
        if call.body is not None:
            payload = json.dumps(call.body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            connection = self._connections.get(port)
            if connection is None:
                connection = self._connections[port] = http.client.HTTPConnection(
                    HOST, port, timeout=10
                )
            try:
                connection.request(call.method, call.path, body=payload, headers=headers)
                response = connection.getresponse()
                body = response.read()
                break
            except (OSError, http.client.HTTPException):
                connection.close()
                del self._connections[port]
                if attempt:
                    raise
        reason = ""
        if response.getheader("content-type", "").startswith("application/problem+json"):
            reason = str(json.loads(body).get("reason", ""))
        return Answer(response.status, reason)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()


# -- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    ports: list[int]
    admin_ports: list[int]
    audit_dbs: list[Path]
    services: list[Service]
    keys: dict[str, str]


def _config(
    directory: Path, upstream_port: int, index: int, storage: str, prefix: str
) -> tuple[dict[str, Any], int, int, Path]:
    text = (ROOT / "src/dijk/demo/config.yaml").read_text()
    config = yaml.safe_load(text)
    port, admin_port = free_port(), free_port()
    database = directory / f"audit-{index}.db"
    config["listen"]["port"] = port
    config["admin"]["port"] = admin_port
    config["upstreams"]["bank"]["url"] = f"http://{HOST}:{upstream_port}"
    config["audit"]["url"] = f"sqlite:///{database}"
    config["audit"]["spool_dir"] = str(directory / f"spool-{index}")  # one writer each
    config["storage"] = {"url": storage, "timeout_s": 1.0}
    config["abuse"]["key_prefix"] = prefix
    config["ratelimit"]["key_prefix"] = prefix + "rl:"  # a fresh start in a shared Redis too
    config["abuse"]["reputation"]["directory"] = str(directory / "reputation")
    # The behaviour model on the bench's time scale: seconds, not hours, of normal traffic.
    config["abuse"]["anomaly"] = {
        "interval_s": 1,
        "learning_intervals": 40,
        "consumer_learning_intervals": 5,
    }
    config["consumers"] += [
        {
            "name": name,
            "api_keys": [{"env": f"BENCH_KEY_{name.upper().replace('-', '_')}"}],
            "scopes": ["accounts:read"],
        }
        for name in CONSUMERS
    ]
    return config, port, admin_port, database


CONSUMERS = ["normal-0", "normal-1", "normal-2", "normal-3", "partner-x", "scraper"]


def start_stack(
    group: ServiceGroup, directory: Path, instances: int, redis_url: str | None
) -> Stack:
    directory.mkdir(parents=True)
    (directory / "reputation").mkdir()
    keys = {name: f"bench_{name}_{secrets.token_urlsafe(12)}" for name in CONSUMERS}
    env = dict(os.environ)
    env.update({f"BENCH_KEY_{n.upper().replace('-', '_')}": key for n, key in keys.items()})
    env["DIJK_DEMO_KEY_READ"] = "bench_read_" + secrets.token_urlsafe(12)
    env["DIJK_DEMO_KEY_WRITE"] = "bench_write_" + secrets.token_urlsafe(12)
    env["DIJK_ADMIN_TOKEN"] = ADMIN_TOKEN
    env["DIJK_AUDIT_KEY"] = secrets.token_hex(32)  # not one generated file raced for by three
    env.pop("DIJK_AUDIT_KEY_FILE", None)
    upstream, upstream_port = _start_upstream(group, directory, env)
    storage = redis_url if instances > 1 and redis_url else "memory://"
    prefix = f"bench{uuid.uuid4().hex[:10]}:"
    ports, admin_ports, databases, services = [], [], [], [upstream]
    for index in range(instances):
        config, port, admin_port, database = _config(
            directory, upstream_port, index, storage, prefix
        )
        path = directory / f"dijk-{index}.yaml"
        path.write_text(yaml.safe_dump(config))
        service = Service(
            f"dijk-{index}",
            [PYTHON, "-m", "dijk", "serve", "-c", str(path)],
            directory / f"dijk-{index}.log",
            env=env,
        )
        group.start(service)
        services.append(service)
        ports.append(port)
        admin_ports.append(admin_port)
        databases.append(database)
    for service, port in zip(services[1:], ports, strict=True):
        problem = _wait(service, port)
        if problem:
            raise SystemExit(f"{service.name}: {problem}")
    return Stack(ports, admin_ports, databases, services, keys)


def _start_upstream(
    group: ServiceGroup, directory: Path, env: dict[str, str]
) -> tuple[Service, int]:
    """The demo upstream; another port when a free one was taken meanwhile (shared hosts)."""
    for attempt in range(5):
        port = free_port()
        upstream = Service(
            "upstream",
            [
                PYTHON,
                "-m",
                "dijk.demo.upstream",
                "--port",
                str(port),
                "--data-dir",
                str(directory / "bank"),
            ],
            directory / f"upstream-{attempt}.log",
            env=env,
        )
        group.start(upstream)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and upstream.exit_code is None:
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return upstream, port
            except OSError:
                time.sleep(0.1)
        group.stop(upstream)
    raise SystemExit("the demo upstream did not start")


def _wait(service: Service, port: int, timeout_s: float = 60) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.exit_code is not None:
            return f"exited: {service.log_tail(3)}"
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/api/v1/status")
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return None
        except OSError:
            pass
        time.sleep(0.2)
    return "not serving"


def incidents(stack: Stack) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for port in stack.admin_ports[:1]:  # shared (Redis) or the only one
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        connection.request(
            "GET",
            "/admin/api/v1/abuse/incidents",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        found += json.loads(connection.getresponse().read())["incidents"]
        connection.close()
    return found


# -- the population ---------------------------------------------------------------------------

EMAILS = [customer.email for customer in generate_customers()]


@dataclass
class Population:
    keys: dict[str, str]
    rng: random.Random
    users: int
    actors: dict[str, str] = field(default_factory=dict)  # request id -> actor

    def home(self, user: int) -> str:
        return f"{31 + user}.{40 + user}.{user}.10"

    def warm_up(self) -> Iterator[tuple[str, Call]]:
        for user in range(self.users):
            yield from self._login(user, typo=user % 5 == 0)

    def _login(self, user: int, typo: bool) -> Iterator[tuple[str, Call]]:
        email = EMAILS[user % len(EMAILS)]
        actor = f"user-{user}"
        if typo:
            yield (
                actor,
                Call(
                    "POST",
                    "/api/v1/login",
                    self.home(user),
                    body={"username": email, "password": DEMO_PASSWORD[:-1]},
                ),
            )
        yield (
            actor,
            Call(
                "POST",
                "/api/v1/login",
                self.home(user),
                body={"username": email, "password": DEMO_PASSWORD},
            ),
        )

    def next(self) -> Iterator[tuple[str, Call]]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            user = rng.randrange(self.users)
            yield from self._login(user, typo=rng.random() < 0.2)
            return
        consumer = rng.randrange(4)
        name = f"normal-{consumer}"
        address = CONSUMER_ADDRESSES[consumer]
        key = self.keys[name]
        if roll < 0.8 or consumer % 2:  # odd consumers only ever read their accounts
            for _ in range(rng.choice((1, 1, 1, 3))):  # the odd burst
                account = 1 + consumer * 5 + rng.randrange(4)
                yield name, Call("GET", f"/api/v1/accounts/{account}", address, key)
        elif roll < 0.92:
            yield name, Call("GET", "/api/v1/accounts?limit=20", address, key)
        else:
            yield (
                name,
                Call("GET", f"/api/v1/search?q={rng.choice(['jan', 'de', 'van'])}", address, key),
            )


# -- scenarios --------------------------------------------------------------------------------


def _public(rng: random.Random) -> str:
    while True:
        first = rng.randint(11, 223)
        if first not in (31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 100, 127, 145, 169, 172, 192):
            return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def stuffing(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    sent = 0
    while sent < n:
        address = _public(rng)
        for _ in range(rng.choice((1, 2))):
            name = f"{rng.choice(['anna', 'piet', 'kees', 'joke', 'sem'])}{rng.randrange(10**6)}"
            yield Call(
                "POST",
                "/api/v1/login",
                address,
                agent="Mozilla/5.0",
                body={"username": f"{name}@mail.example", "password": "Summer2024!"},
            )
            sent += 1


def spraying(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    addresses = [_public(rng) for _ in range(60)]
    passwords = ["Welkom01!", "Zomer2024", "Password1"]
    for index in range(n):
        yield Call(
            "POST",
            "/api/v1/login",
            addresses[index % len(addresses)],
            agent="python-requests",
            body={
                "username": EMAILS[index % len(EMAILS)],
                "password": passwords[index // len(EMAILS) % 3],
            },
        )


def bola_sequential(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    for account in range(1, n + 1):
        yield Call("GET", f"/api/v1/accounts/{account}", "20.30.40.50", keys["partner-x"])


def bola_random(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    for _ in range(n):
        account = rng.randint(1, 5000)
        yield Call("GET", f"/api/v1/accounts/{account}", "20.30.40.50", keys["partner-x"])


def scraping(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    key = keys["scraper"]
    sent = 0
    while sent < n:
        offset = rng.randrange(0, 50, 10)
        yield Call("GET", f"/api/v1/accounts?limit=10&offset={offset}", "20.30.40.60", key)
        ids = list(range(offset + 1, offset + 11))
        rng.shuffle(ids)
        for account in ids:
            yield Call("GET", f"/api/v1/accounts/{account}", "20.30.40.60", key)
        sent += 11


def stolen_key(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    for index in range(n):
        address = THIEF_ADDRESSES[index % len(THIEF_ADDRESSES)]
        yield Call(
            "GET",
            f"/api/v1/accounts/{1 + index % 4}",
            address,
            keys["normal-0"],
            agent="curl/8.5.0",
        )


def scanning(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    words = ["admin", "backup", ".env", "wp-login.php", "api/v2", "debug", "config.json"]
    for index in range(n):
        yield Call("GET", f"/{rng.choice(words)}/{index}", "185.220.101.5", agent="Mozilla/5.0")


def compromised(keys: dict[str, str], rng: random.Random, n: int) -> Iterator[Call]:
    """normal-1, from its own server, suddenly searching and listing everything fast."""
    key = keys["normal-1"]
    for index in range(n):
        if index % 2:
            yield Call(
                "GET", f"/api/v1/search?q={rng.choice('aeioun')}", CONSUMER_ADDRESSES[1], key
            )
        else:
            yield Call(
                "GET",
                f"/api/v1/accounts?limit=100&offset={index % 5 * 10}",
                CONSUMER_ADDRESSES[1],
                key,
            )


def credential(name: str) -> Callable[[dict[str, str]], str]:
    """The incident subject of a bench consumer's key (``cred:key:<16 hex of SHA-256>``)."""
    return lambda keys: "cred:key:" + hashlib.sha256(keys[name].encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Scenario:
    name: str
    reason: str
    make: Callable[[dict[str, str], random.Random, int], Iterator[Call]]
    size: float = 1.0  # share of the attack budget
    warm_s: float = 0.0  # normal traffic first, for the behaviour model to learn
    victim: str = ""  # the normal consumer whose key the attacker holds: not counted as normal
    subject: Callable[[dict[str, str]], str] | None = None  # the attacker's incident subject


SCENARIOS = [
    Scenario("stuffing, distributed (1-2 per address)", "abuse.credential_stuffing", stuffing, 2),
    Scenario("password spraying", "abuse.credential_stuffing", spraying),
    Scenario(
        "BOLA walk, sequential ids",
        "abuse.enumeration",
        bola_sequential,
        subject=credential("partner-x"),
    ),
    Scenario(
        "BOLA walk, random ids", "abuse.enumeration", bola_random, subject=credential("partner-x")
    ),
    Scenario(
        "scraping (list, then every id)",
        "abuse.enumeration",
        scraping,
        subject=credential("scraper"),
    ),
    Scenario(
        "stolen key from 4 other countries",
        "abuse.token_misuse",
        stolen_key,
        victim="normal-0",
        subject=credential("normal-0"),
    ),
    Scenario(
        "path scanning, no key",
        "abuse.scanning",
        scanning,
        subject=lambda keys: "ip:185.220.101.5",
    ),
    Scenario(
        "compromised key, unlike itself",
        "abuse.anomaly",
        compromised,
        warm_s=15,
        victim="normal-1",
        subject=credential("normal-1"),
    ),
]


@dataclass
class Outcome:
    scenario: str
    instances: int
    detected: bool
    until_detection: int | None
    attack_requests: int
    normal_requests: int
    normal_flagged: int
    normal_refused: int
    normal_actors_refused: int
    attack_refused: int
    false_incidents: int


def run_scenario(
    scenario: Scenario, stack: Stack, budget: int, mix: int, users: int, seed: int
) -> Outcome:
    rng = random.Random(seed)
    client = Client(stack.ports)
    population = Population(stack.keys, random.Random(seed + 1), users)
    normal_ids: dict[str, str] = {}
    refused_normal = 0
    refused_actors: set[str] = set()
    counter = 0

    def normal(items: Iterator[tuple[str, Call]]) -> None:
        nonlocal counter, refused_normal
        for actor, call in items:
            if actor == scenario.victim:
                client.send(call, "victim")  # its key is the attacker's too: not "normal"
                continue
            counter += 1
            request_id = f"normal-{counter}"
            normal_ids[request_id] = actor
            answer = client.send(call, request_id)
            if answer.reason.startswith("abuse."):
                refused_normal += 1
                refused_actors.add(actor)

    normal(population.warm_up())
    for _ in range(users):
        normal(population.next())
    warm_until = time.monotonic() + scenario.warm_s
    while time.monotonic() < warm_until:
        normal(population.next())
        time.sleep(0.02)
    detected_at: int | None = None
    attack_refused = 0
    sent = 0
    for sent, call in enumerate(scenario.make(stack.keys, rng, int(budget * scenario.size)), 1):
        answer = client.send(call, f"attack-{sent}")
        if answer.reason.startswith("abuse."):
            attack_refused += 1
        if detected_at is None and _detected(scenario, answer, stack):
            detected_at = sent
        for _ in range(mix):
            normal(population.next())
    client.close()
    innocent = normal_subjects(stack.keys, users, scenario.victim)
    false_incidents = sum(1 for item in incidents(stack) if item["subject"] in innocent)
    time.sleep(0.5)  # batched audit writes
    flagged = 0
    for database in stack.audit_dbs:
        with closing(sqlite3.connect(database)) as connection:
            rows = connection.execute(
                "SELECT request_id FROM dijk_audit WHERE reason LIKE 'abuse.%'"
            ).fetchall()
        flagged += sum(1 for (request_id,) in rows if request_id in normal_ids)
    return Outcome(
        scenario.name,
        len(stack.ports),
        detected_at is not None,
        detected_at,
        sent,
        len(normal_ids),
        flagged,
        refused_normal,
        len(refused_actors),
        attack_refused,
        false_incidents,
    )


def _detected(scenario: Scenario, answer: Answer, stack: Stack) -> bool:
    if answer.reason == scenario.reason:
        return True
    wanted = scenario.subject(stack.keys) if scenario.subject else None
    return any(
        item["reason"] == scenario.reason and wanted in (None, item["subject"])
        for item in incidents(stack)
    )


def normal_subjects(keys: dict[str, str], users: int, victim: str) -> set[str]:
    subjects = {credential(f"normal-{n}")(keys) for n in range(4) if f"normal-{n}" != victim}
    subjects |= {f"ip:{address}" for address in CONSUMER_ADDRESSES}
    subjects |= {f"ip:{31 + user}.{40 + user}.{user}.10" for user in range(users)}
    return subjects


# -- cost in process --------------------------------------------------------------------------


def measure_cost(rounds: int, redis_url: str | None) -> dict[str, float | None]:
    """Median µs the abuse stages add to a normal request, in process (no sockets)."""
    os.environ.setdefault("DIJK_DEMO_KEY_READ", "cost_read_0123456789")
    os.environ.setdefault("DIJK_DEMO_KEY_WRITE", "cost_write_0123456789")
    from dijk.abuse.signals import Plan
    from dijk.abuse.store import Kind, Op
    from dijk.cli.demo import demo_config
    from dijk.pipeline.context import Identity, RequestContext
    from dijk.proxy.state import build_state

    directory = Path(tempfile.mkdtemp(prefix="dijk-abuse-cost-"))
    config = demo_config(free_port(), free_port(), free_port(), directory)
    state = build_state(config, 1)
    route = next(item for item in state.router.routes if item.name == "account")
    stages = [s for s in route.plan.pipeline.stages if s.name.startswith("abuse_")]
    identity = Identity("normal", "api_key", credential_id="key:0123456789abcdef")
    headers = [("host", "bank"), ("user-agent", "bank-app/3.1"), ("x-api-key", "k")]

    async def one(account: int, credential: str = identity.credential_id) -> float:
        ctx = RequestContext(
            "r", "GET", f"/api/v1/accounts/{account}", "", headers, "145.1.10.10", 1, "http", "1.1"
        )
        ctx.route = route
        ctx.path_params = {"id": str(account)}
        ctx.identity = Identity("normal", "api_key", credential_id=credential)
        started = time.perf_counter()
        for stage in stages:
            if "request_headers" in {phase.value for phase in stage.phases}:
                await stage.request_headers(ctx)
        ctx.response_status = 200
        for stage in stages:
            if "log" in {phase.value for phase in stage.phases}:
                await stage.log(ctx)
        return (time.perf_counter() - started) * 1e6

    async def measure() -> dict[str, float | None]:
        repeated = [await one(1 + n % 5) for n in range(rounds)]
        # Observed: a credential's first requests (new id, new address): counted in store.
        fresh = [await one(1 + n % 5, f"key:{n:016x}") for n in range(min(rounds, 5000))]
        result: dict[str, float | None] = {
            "normal_request_us": statistics.median(repeated[rounds // 10 :]),
            "observed_request_us": statistics.median(fresh[len(fresh) // 10 :]),
            "redis_observation_us": None,
        }
        if redis_url:
            from dijk.abuse.store import open_store
            from dijk.storage import StorageUnavailable

            store = open_store(redis_url, 1.0, f"cost{uuid.uuid4().hex[:8]}:", 4, 1000)
            plan = Plan()
            ops = [
                Op(Kind.DISTINCT, "ids", "7", 600),
                Op(Kind.COUNT, "req", "1", 600),
                Op(Kind.COUNT_READ, "miss", "0", 600),
                Op(Kind.SEQUENCE, "seq", "7", 600),
            ]
            plan.ops.extend(ops)
            timings = []
            try:
                for _ in range(500):
                    started = time.perf_counter()
                    await store.run(ops, 0, time.time())
                    timings.append((time.perf_counter() - started) * 1e6)
                result["redis_observation_us"] = statistics.median(timings[50:])
            except StorageUnavailable:
                pass
            await store.close()
        for pipeline in state.pipelines:
            await pipeline.close()
        return result

    return asyncio.run(measure())


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller scenarios (about a minute)")
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/15",
        help="Redis for the 3-instance run ('' to skip it)",
    )
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--only", default="", help="run the scenarios whose name has this")
    args = parser.parse_args()
    budget, mix, users = (150, 2, 12) if args.quick else (400, 3, 24)
    if os.environ.get("BENCH_ABUSE_TINY"):
        budget, mix, users = 40, 1, 4
    redis_url = args.redis or None
    counts = [1, 3] if redis_url else [1]
    outcomes: list[Outcome] = []
    with sigterm_as_interrupt(), ServiceGroup() as group:
        for instances in counts:
            for index, scenario in enumerate(SCENARIOS):
                if args.only not in scenario.name:
                    continue
                directory = Path(tempfile.mkdtemp(prefix="dijk-abuse-bench-")) / "stack"
                stack = start_stack(group, directory, instances, redis_url)
                try:
                    outcome = run_scenario(scenario, stack, budget, mix, users, args.seed + index)
                finally:
                    for service in reversed(stack.services):
                        group.stop(service)
                outcomes.append(outcome)
                found = outcome.until_detection
                verdict = f"detected after {found}" if found else "not detected"
                print(f"  {instances} instance(s), {scenario.name}: {verdict}", flush=True)
    cost = measure_cost(5000 if args.quick else 20000, redis_url)
    rows = []
    for outcome in outcomes:
        rows.append(
            [
                outcome.scenario,
                str(outcome.instances),
                "yes" if outcome.detected else "no",
                str(outcome.until_detection) if outcome.until_detection else "-",
                f"{outcome.attack_refused}/{outcome.attack_requests}",
                f"{outcome.normal_flagged}/{outcome.normal_requests}",
                str(outcome.normal_actors_refused),
                str(outcome.false_incidents),
            ]
        )
    print()
    print(
        format_table(
            [
                "scenario",
                "instances",
                "detected",
                "attacker requests until detection",
                "attacker requests refused",
                "normal requests flagged",
                "normal users refused",
                "incidents on normal users",
            ],
            rows,
            right={1, 3, 4, 5, 6, 7},
        )
    )
    print()
    redis_cost = cost["redis_observation_us"]
    print(
        f"Added cost per request (in process, median): {cost['normal_request_us']:.1f} µs for a "
        f"normal request (memory://, repeated reads), {cost['observed_request_us']:.1f} µs when "
        f"it is observed (a caller's first requests: counted in the store)"
        + (f"; one observation's Redis round trip {redis_cost:.0f} µs" if redis_cost else "")
    )
    iso, stamp = utc_timestamp()
    write_results(
        RESULTS_DIR,
        "abuse",
        stamp,
        {
            "time": iso,
            "quick": args.quick,
            "machine": machine_info({}, ["river"]),
            "scenarios": [outcome.__dict__ for outcome in outcomes],
            "cost_us": cost,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
