"""The detectors: what each observes about a request, and what the counts mean.

Pure: a detector turns the :class:`Facts` of one finished request into storage operations
(:class:`~dijk.abuse.store.Op`) and, given their answers, into :class:`Finding` values with
a human explanation. No clock (``facts.now``), no I/O, no HTTP; the stages do the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dijk.abuse.settings import (
    CredentialStuffingSettings,
    EnumerationSettings,
    ScanningSettings,
    TokenMisuseSettings,
)
from dijk.abuse.store import Kind, Op

__all__ = [
    "SCANNER_AGENTS",
    "Facts",
    "Finding",
    "Plan",
    "credential_stuffing",
    "enumeration",
    "human_window",
    "known_key",
    "scanner_fingerprint",
    "scanning",
    "token_misuse",
]

_DAY = 86_400.0

STUFFING = "abuse.credential_stuffing"
ENUMERATION = "abuse.enumeration"
TOKEN_MISUSE = "abuse.token_misuse"  # noqa: S105 - a reason code, not a secret
SCANNING = "abuse.scanning"
ANOMALY = "abuse.anomaly"

# Tools that announce themselves in User-Agent (lower case substrings).
SCANNER_AGENTS = (
    "sqlmap",
    "nikto",
    "nuclei",
    "gobuster",
    "dirbuster",
    "feroxbuster",
    "ffuf",
    "wfuzz",
    "masscan",
    "zgrab",
    "nmap scripting engine",
    "acunetix",
    "netsparker",
    "wpscan",
    "arachni",
    "openvas",
    "jaeles",
    "dirsearch",
)


@dataclass(slots=True)
class Facts:
    """One finished request, as the detectors see it (no raw username, no body)."""

    now: float
    route: str
    template: str
    client_ip: str
    network: str
    country: str | None
    status: int
    method: str = "GET"
    path: str = "/"
    credential: str | None = None  # hashed credential id, or consumer name
    user_agent: str = ""
    username: str | None = None  # digest of the normalised username
    login: str | None = None  # "failure" | "success" | None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    reason: str
    signal: str
    subject: str
    scope: str
    detail: str
    values: dict[str, Any] = field(default_factory=dict)
    unless_known: bool = False  # login subjects: known (username, network) pairs pass


Judge = Callable[[Sequence[object]], list[Finding]]


@dataclass(slots=True)
class Plan:
    """Operations of every detector for one request, and how to read their answers."""

    ops: list[Op] = field(default_factory=list)
    judges: list[tuple[int, int, Judge]] = field(default_factory=list)

    def add(self, ops: list[Op], judge: Judge) -> None:
        start = len(self.ops)
        self.ops.extend(ops)
        self.judges.append((start, len(self.ops), judge))

    def judge(self, results: Sequence[object]) -> list[Finding]:
        found: list[Finding] = []
        for start, end, judge in self.judges:
            found.extend(judge(results[start:end]))
        return found


def human_window(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float, str)) else 0


# -- credential stuffing ---------------------------------------------------------------------


def known_key(prefix: str, route: str, user: str, network: str) -> str:
    """Marks a successful login of ``user`` from ``network`` (kept for remember_s)."""
    return f"{prefix}cs:{route}:known:{user}:{network}"


def credential_stuffing(
    facts: Facts, settings: CredentialStuffingSettings, prefix: str
) -> tuple[list[Op], Judge] | None:
    user = facts.username
    if user is None or facts.login is None:
        return None
    window = settings.window_s
    route = facts.route
    p = f"{prefix}cs:{route}:"
    ops = [
        Op(Kind.DISTINCT, f"{p}ua:{facts.client_ip}", user, window),
        Op(Kind.DISTINCT, f"{p}na:{facts.network}", user, window),
        Op(Kind.COUNT, f"{p}att", "1", window),
    ]
    failure = facts.login == "failure"
    if failure:
        ops += [
            Op(Kind.COUNT, f"{p}fail", "1", window),
            Op(Kind.DISTINCT, f"{p}fa", user, window),
            Op(Kind.DISTINCT, f"{p}fip", facts.client_ip, window),
            Op(Kind.DISTINCT, f"{p}fday", user, _DAY),
            Op(Kind.DISTINCT, f"{p}ac:{user}", facts.client_ip, window),
            Op(Kind.COUNT, f"{p}af:{user}", "1", window),
        ]
        if facts.country:
            ops.append(Op(Kind.DISTINCT, f"{p}fc:{facts.country}", user, window))
    else:
        known = known_key(prefix, route, user, facts.network)
        ops += [
            Op(Kind.COUNT_READ, f"{p}af:{user}", "0", window),
            Op(Kind.KNOWN, known, "1", settings.remember_s),
            Op(Kind.REMEMBER, known, "1", settings.remember_s),
            Op(Kind.DISTINCT, f"{p}su:{facts.client_ip}", user, window),
        ]
    span = human_window(window)

    def judge(results: Sequence[object]) -> list[Finding]:
        found: list[Finding] = []
        per_address, per_network, attempts = (_int(value) for value in results[:3])
        if per_address > settings.max_accounts_per_address:
            found.append(
                Finding(
                    STUFFING,
                    "accounts_per_address",
                    f"ip:{facts.client_ip}",
                    route,
                    f"{per_address} accounts tried from one address in {span}; "
                    f"limit {settings.max_accounts_per_address}.",
                    {"accounts": per_address},
                )
            )
        elif per_network > settings.max_accounts_per_network:
            found.append(
                Finding(
                    STUFFING,
                    "accounts_per_network",
                    f"net:{facts.network}",
                    route,
                    f"{per_network} accounts tried from one network ({facts.network}) in "
                    f"{span}; limit {settings.max_accounts_per_network}.",
                    {"accounts": per_network},
                )
            )
        if failure:
            failures, failed, addresses, day, account_addresses = (
                _int(value) for value in results[3:8]
            )
            ratio = failures / attempts if attempts else 0.0
            learnt = max(0, day - failed) * window / (_DAY - window)
            baseline = max(settings.baseline_accounts, learnt)
            needed = max(settings.min_failed_accounts, settings.baseline_factor * baseline)
            if failed >= needed and ratio >= settings.min_failure_ratio:
                found.append(
                    Finding(
                        STUFFING,
                        "failed_accounts",
                        f"route:{route}",
                        route,
                        f"{failed} accounts tried from {addresses} addresses in {span} "
                        f"({ratio:.0%} failed); baseline {baseline:.0f}.",
                        {
                            "accounts": failed,
                            "addresses": addresses,
                            "failure_ratio": round(ratio, 3),
                            "baseline": round(baseline, 1),
                        },
                        unless_known=True,
                    )
                )
            elif day > settings.max_failed_accounts_per_day:
                found.append(
                    Finding(
                        STUFFING,
                        "failed_accounts_per_day",
                        f"route:{route}",
                        route,
                        f"{day} accounts failed to log in in 24 h; limit "
                        f"{settings.max_failed_accounts_per_day}.",
                        {"accounts": day},
                        unless_known=True,
                    )
                )
            if account_addresses > settings.max_addresses_per_account:
                found.append(
                    Finding(
                        STUFFING,
                        "addresses_per_account",
                        f"account:{user}",
                        route,
                        f"One account failed to log in from {account_addresses} addresses in "
                        f"{span}; limit {settings.max_addresses_per_account}.",
                        {"addresses": account_addresses},
                        unless_known=True,
                    )
                )
            if facts.country and len(results) > 9:
                per_country = _int(results[9])
                if (
                    per_country > settings.max_accounts_per_country
                    and ratio >= settings.min_failure_ratio
                ):
                    found.append(
                        Finding(
                            STUFFING,
                            "accounts_per_country",
                            f"country:{facts.country}",
                            route,
                            f"{per_country} accounts failed to log in from {facts.country} in "
                            f"{span}; limit {settings.max_accounts_per_country}.",
                            {"accounts": per_country, "country": facts.country},
                            unless_known=True,
                        )
                    )
        else:
            account_failures, known, _, successes = (_int(value) for value in results[3:7])
            if account_failures >= settings.takeover_failures and not known:
                found.append(
                    Finding(
                        STUFFING,
                        "success_after_failures",
                        f"account:{user}",
                        route,
                        f"A login succeeded after {account_failures} failures for the account "
                        f"in {span}, from a network it never logged in from.",
                        {"failures": account_failures},
                        unless_known=True,
                    )
                )
            if successes > settings.max_successes_per_address:
                found.append(
                    Finding(
                        STUFFING,
                        "successes_per_address",
                        f"ip:{facts.client_ip}",
                        route,
                        f"{successes} different accounts logged in from one address in {span}; "
                        f"limit {settings.max_successes_per_address}.",
                        {"accounts": successes},
                    )
                )
        return found

    return ops, judge


# -- enumeration ------------------------------------------------------------------------------


def enumeration(
    facts: Facts, settings: EnumerationSettings, prefix: str
) -> tuple[list[Op], Judge] | None:
    object_id = facts.object_id
    if object_id is None:
        return None
    caller = f"cred:{facts.credential}" if facts.credential else f"ip:{facts.client_ip}"
    window = settings.window_s
    p = f"{prefix}en:{facts.route}:{caller}:"
    miss = facts.status in (403, 404)
    ops = [
        Op(Kind.DISTINCT, f"{p}ids", object_id, window),
        Op(Kind.COUNT, f"{p}req", "1", window),
        Op(Kind.COUNT if miss else Kind.COUNT_READ, f"{p}miss", "1" if miss else "0", window),
    ]
    numeric = object_id.isdigit() and len(object_id) <= 18
    if numeric:
        ops.append(Op(Kind.SEQUENCE, f"{p}seq", object_id, window))
    span = human_window(window)

    def judge(results: Sequence[object]) -> list[Finding]:
        ids, requests, misses = (_int(value) for value in results[:3])
        run = _int(results[3]) if numeric else 0
        values = {"ids": ids, "requests": requests, "misses": misses, "run": run}
        what = f"{ids} different ids of {facts.template} requested in {span}"
        if ids > settings.max_distinct_ids:
            signal, detail = (
                "distinct_ids",
                f"{what}; limit {settings.max_distinct_ids}.",
            )
        elif run >= settings.sequential_run:
            signal, detail = (
                "sequential_walk",
                f"{what}, the last {run} one after another; limit {settings.sequential_run}.",
            )
        elif (
            requests >= settings.min_requests
            and ids >= settings.min_requests // 2
            and misses / requests >= settings.max_miss_ratio
        ):
            signal, detail = (
                "misses",
                f"{what}; {misses} of {requests} answers were 403 or 404.",
            )
        else:
            return []
        return [Finding(ENUMERATION, signal, caller, facts.route, detail, values)]

    return ops, judge


# -- token misuse ----------------------------------------------------------------------------


def token_misuse(
    facts: Facts, settings: TokenMisuseSettings, prefix: str
) -> tuple[list[Op], Judge] | None:
    credential = facts.credential
    if not credential:
        return None
    window = settings.window_s
    p = f"{prefix}tm:{credential}:"
    ops = [
        Op(Kind.DISTINCT, f"{p}net", facts.network, window),
        Op(Kind.DISTINCT, f"{p}ua", facts.user_agent[:256], window),
    ]
    if facts.country:
        ops.append(Op(Kind.STAMP, f"{p}cc", facts.country, max(window, settings.travel_s)))
    span = human_window(window)
    subject = f"cred:{credential}"

    def judge(results: Sequence[object]) -> list[Finding]:
        found: list[Finding] = []
        networks, agents = _int(results[0]), _int(results[1])
        if facts.country and len(results) > 2 and isinstance(results[2], list):
            stamps = results[2]
            seen = {str(stamps[i]): _int(stamps[i + 1]) for i in range(0, len(stamps), 2)}
            now_ms = int(facts.now * 1000)
            recent = sorted(
                (country for country, ms in seen.items() if now_ms - ms <= window * 1000),
                key=lambda country: seen[country],
            )
            if len(recent) > settings.max_countries:
                found.append(
                    Finding(
                        TOKEN_MISUSE,
                        "countries",
                        subject,
                        "*",
                        f"One credential used from {len(recent)} countries "
                        f"({', '.join(recent)}) in {span}; limit {settings.max_countries}.",
                        {"countries": recent},
                    )
                )
            elif settings.travel_s:
                others = [(ms, country) for country, ms in seen.items() if country != facts.country]
                if others:
                    last_ms, last_country = max(others)
                    gap = (now_ms - last_ms) / 1000
                    if gap <= settings.travel_s:
                        found.append(
                            Finding(
                                TOKEN_MISUSE,
                                "impossible_travel",
                                subject,
                                "*",
                                f"One credential used from {facts.country} {gap:.0f} s after "
                                f"{last_country}; at least {settings.travel_s:g} s expected.",
                                {"from": last_country, "to": facts.country, "seconds": gap},
                            )
                        )
        if networks > settings.max_networks:
            found.append(
                Finding(
                    TOKEN_MISUSE,
                    "networks",
                    subject,
                    "*",
                    f"One credential used from {networks} networks in {span}; limit "
                    f"{settings.max_networks}.",
                    {"networks": networks},
                )
            )
        if agents > settings.max_user_agents:
            found.append(
                Finding(
                    TOKEN_MISUSE,
                    "user_agents",
                    subject,
                    "*",
                    f"One credential sent {agents} different User-Agent values in {span}; "
                    f"limit {settings.max_user_agents}.",
                    {"user_agents": agents},
                )
            )
        return found

    return ops, judge


# -- scanning --------------------------------------------------------------------------------


def scanning(
    facts: Facts, settings: ScanningSettings, prefix: str
) -> tuple[list[Op], Judge] | None:
    if facts.status not in settings.statuses:
        return None
    window = settings.window_s
    p = f"{prefix}sc:"
    ops = [
        Op(Kind.COUNT, f"{p}err:{facts.client_ip}", "1", window),
        Op(Kind.DISTINCT, f"{p}paths:{facts.client_ip}", f"{facts.method} {facts.path}", window),
    ]
    if facts.credential:
        ops.append(Op(Kind.COUNT, f"{p}errc:{facts.credential}", "1", window))
    span = human_window(window)
    statuses = "/".join(str(status) for status in settings.statuses)

    def judge(results: Sequence[object]) -> list[Finding]:
        errors, paths = _int(results[0]), _int(results[1])
        found: list[Finding] = []
        if errors > settings.max_errors:
            found.append(
                Finding(
                    SCANNING,
                    "errors",
                    f"ip:{facts.client_ip}",
                    "*",
                    f"{errors} answers {statuses} to one address in {span}, on {paths} "
                    f"different paths; limit {settings.max_errors}.",
                    {"errors": errors, "paths": paths},
                )
            )
        if facts.credential and len(results) > 2:
            by_credential = _int(results[2])
            if by_credential > settings.max_errors:
                found.append(
                    Finding(
                        SCANNING,
                        "credential_errors",
                        f"cred:{facts.credential}",
                        "*",
                        f"{by_credential} answers {statuses} to one credential in {span}; "
                        f"limit {settings.max_errors}.",
                        {"errors": by_credential},
                    )
                )
        return found

    return ops, judge


_FINGERPRINTS: dict[str, str | None] = {}


def scanner_fingerprint(user_agent: str) -> str | None:
    """The scanner a User-Agent names, if any (answers cached: clients repeat their agent)."""
    if not user_agent:
        return None
    if user_agent in _FINGERPRINTS:
        return _FINGERPRINTS[user_agent]
    lowered = user_agent.lower()
    found = next((name for name in SCANNER_AGENTS if name in lowered), None)
    if len(_FINGERPRINTS) >= 4096:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[user_agent] = found
    return found
