"""Checks across the whole configuration, reported with the path they concern.

They run after the models validate, so that each problem can be pinned to the line of the
field at fault (a pydantic model validator could only point at the root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from dijk.config.models import DijkConfig, RateLimitRule, RouteConfig

Path = tuple[str | int, ...]


def cross_check(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    seen: dict[str, int] = {}
    for index, route in enumerate(config.routes):
        if route.name in seen:
            yield ("routes", index, "name"), f"duplicate route name {route.name!r}"
        seen.setdefault(route.name, index)
        if route.upstream not in config.upstreams:
            known = ", ".join(sorted(config.upstreams))
            yield (
                ("routes", index, "upstream"),
                f"upstream {route.upstream!r} is not defined (known: {known})",
            )
        if "api_key" in route.auth and config.auth.api_key is None:
            yield ("routes", index, "auth"), "uses api_key but auth.api_key is not configured"
        if route.scopes and not route.auth:
            yield ("routes", index, "scopes"), "scopes need at least one authentication method"
    consumers: set[str] = set()
    for index, consumer in enumerate(config.consumers):
        if consumer.name in consumers:
            yield ("consumers", index, "name"), f"duplicate consumer name {consumer.name!r}"
        consumers.add(consumer.name)
        for key_index, ref in enumerate(consumer.api_keys):
            if ref.env is not None and not os.environ.get(ref.env):
                yield (
                    ("consumers", index, "api_keys", key_index, "env"),
                    f"environment variable {ref.env} is not set",
                )
    if config.listen.port == config.admin.port and config.listen.address == config.admin.address:
        yield ("admin", "port"), "listen and admin must not use the same address and port"
    yield from _identity_checks(config)
    yield from _token_subject_checks(config)
    yield from _waf_consumer_checks(config, consumers)
    yield from _hide_credentials_checks(config)
    yield from _rate_limit_checks(config)
    yield from _audit_checks(config)
    if config.workers != 1 and (config.decision.listen or config.decision.grpc):
        yield (
            ("workers",),
            "the decision listeners run in one process: use workers: 1 with decision.listen"
            " or decision.grpc (run more instances behind the proxy instead)",
        )
    yield from _abuse_checks(config)


def _abuse_checks(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    """What each abuse detector needs from its route (see dijk.stages.abuse)."""
    for index, route in enumerate(config.routes):
        abuse = route.abuse
        if abuse is None:
            continue
        if abuse.enumeration is not None and "{" not in (route.match.path_template or ""):
            yield (
                ("routes", index, "abuse", "enumeration"),
                "needs a match.path_template with an id, e.g. /api/v1/accounts/{id}",
            )
        for name in ("token_misuse", "anomaly"):
            if getattr(abuse, name) is not None and not route.auth:
                yield (
                    ("routes", index, "abuse", name),
                    "needs a route with auth (it watches credentials)",
                )


def _identity_checks(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    """Authentication, authorization and network policy."""
    auth = config.auth
    tls = config.listen.tls
    for index, route in enumerate(config.routes):
        for method, configured in (
            ("jwt", auth.jwt),
            ("introspection", auth.introspection),
        ):
            if method in route.auth and configured is None:
                message = f"uses {method} but auth.{method} is not configured"
                yield ("routes", index, "auth"), message
        if "mtls" in route.auth and (tls is None or not tls.client_ca_file):
            yield (
                ("routes", index, "auth"),
                "uses mtls but listen.tls.client_ca_file is not configured",
            )
        if len(set(route.auth)) != len(route.auth):
            yield ("routes", index, "auth"), "lists a method twice"
        if route.scopes_by_method and not route.auth:
            yield (
                ("routes", index, "scopes_by_method"),
                "scopes need at least one authentication method",
            )
        methods = route.match.methods
        for method in route.scopes_by_method:
            # HEAD is routed wherever GET is (and needs GET's scopes, stages/authz.py).
            if not (
                methods is None or method in methods or (method == "HEAD" and "GET" in methods)
            ):
                yield (
                    ("routes", index, "scopes_by_method", method),
                    f"{method} is not among this route's match.methods",
                )
        if route.groups and not route.auth:
            yield ("routes", index, "groups"), "groups need at least one authentication method"
        if route.network == "internal" and not config.network.internal_networks:
            yield (
                ("routes", index, "network"),
                "'internal' needs network.internal_networks to list the internal ranges",
            )
    jwks_file = auth.jwt.jwks_file if auth.jwt is not None else None
    if jwks_file is not None and not os.path.isfile(jwks_file):
        yield ("auth", "jwt", "jwks_file"), f"no such file: {jwks_file}"
    if auth.introspection is not None:
        env = auth.introspection.client_secret_env
        if not os.environ.get(env):
            yield (
                ("auth", "introspection", "client_secret_env"),
                f"environment variable {env} is not set",
            )
    if tls is not None:
        for name in ("cert_file", "key_file", "client_ca_file"):
            value = getattr(tls, name)
            if value is not None and not os.path.isfile(value):
                yield ("listen", "tls", name), f"no such file: {value}"
    bound: dict[str, str] = {}
    for index, consumer in enumerate(config.consumers):
        for cert_index, ref in enumerate(consumer.client_certificates):
            key = (ref.sha256 or "").replace(":", "").lower() or ref.subject or ref.san or ""
            other = bound.setdefault(key, consumer.name)
            if other != consumer.name:
                yield (
                    ("consumers", index, "client_certificates", cert_index),
                    f"this certificate is already bound to consumer {other!r}",
                )
        if consumer.client_certificates and (tls is None or not tls.client_ca_file):
            yield (
                ("consumers", index, "client_certificates"),
                "client certificates need listen.tls.client_ca_file",
            )


def _token_subject_checks(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    """Token subjects linked to consumers (``dijk.auth.consumers``): one consumer per
    subject and method, and only for a method that is configured."""
    auth = config.auth
    for field, configured in (
        ("jwt_subjects", auth.jwt is not None),
        ("introspection_subjects", auth.introspection is not None),
    ):
        method = field.removesuffix("_subjects")
        owners: dict[str, str] = {}
        for index, consumer in enumerate(config.consumers):
            subjects: list[str] = getattr(consumer, field)
            if subjects and not configured:
                yield (
                    ("consumers", index, field),
                    f"lists token subjects but auth.{method} is not configured",
                )
            for subject_index, subject in enumerate(subjects):
                owner = owners.setdefault(subject, consumer.name)
                if owner != consumer.name:
                    yield (
                        ("consumers", index, field, subject_index),
                        f"subject {subject[:64]!r} already names consumer {owner!r} "
                        "(a token subject is one consumer)",
                    )
    introspection = auth.introspection
    if introspection is not None and introspection.on_unavailable == "allow":
        for index, consumer in enumerate(config.consumers):
            if consumer.name == "unverified":
                yield (
                    ("consumers", index, "name"),
                    "'unverified' is the name of callers let through while introspection is "
                    "unavailable (on_unavailable: allow); choose another name",
                )


def _hide_credentials_checks(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    """``hide_credentials`` needs a credential to hide, and nothing after authentication may
    count requests by a header it removes (every request would fall in one bucket)."""
    hidden_by: dict[str, str] = {}  # header → first route that hides it
    for index, route in enumerate(config.routes):
        if not route.hide_credentials:
            continue
        path: Path = ("routes", index, "hide_credentials")
        if not route.auth:
            yield path, "a public route (auth: []) receives no credential to hide"
            continue
        if set(route.auth) == {"mtls"}:
            yield (
                path,
                "mtls leaves nothing to hide (the client certificate ends at the TLS listener "
                "and is never forwarded); remove hide_credentials",
            )
            continue
        hidden = _hidden_headers(config, route)
        for header in hidden:
            hidden_by.setdefault(header, route.name)
        for rule_index, rule in enumerate(route.rate_limit):
            for header in _late_header_parts(rule, hidden):
                yield (
                    ("routes", index, "rate_limit", rule_index, "key"),
                    f"header:{header} is read after authentication, when hide_credentials has "
                    "removed it; count by api_key (the hashed credential id) instead",
                )
    hidden_anywhere = frozenset(hidden_by)
    for consumer_index, consumer in enumerate(config.consumers):
        for rule_index, rule in enumerate(consumer.rate_limit):
            for header in _late_header_parts(rule, hidden_anywhere, always_late=True):
                yield (
                    ("consumers", consumer_index, "rate_limit", rule_index, "key"),
                    f"header:{header} is removed by hide_credentials on route "
                    f"{hidden_by[header]!r} before consumer limits run; count by api_key (the "
                    "hashed credential id) instead",
                )


def _hidden_headers(config: DijkConfig, route: RouteConfig) -> frozenset[str]:
    """Lower-case names of the headers ``hide_credentials`` removes on ``route``."""
    names: set[str] = set()
    if not route.hide_credentials:
        return frozenset()
    if "api_key" in route.auth and config.auth.api_key is not None:
        names.add(config.auth.api_key.header.lower())
    if "jwt" in route.auth or "introspection" in route.auth:
        names.add("authorization")
    return frozenset(names)


def _late_header_parts(
    rule: RateLimitRule, hidden: frozenset[str], *, always_late: bool = False
) -> list[str]:
    """Header parts of a rule that runs after authentication and reads a hidden header."""
    parts = rule.key.split("+")
    late = always_late or any(
        part in ("consumer", "api_key") or part.startswith("claim:") for part in parts
    )
    if not late:
        return []  # counted before authentication (priority 7000): the header is still there
    return [
        part.split(":", 1)[1]
        for part in parts
        if part.startswith("header:") and part.split(":", 1)[1] in hidden
    ]


def _rate_limit_checks(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    """Rate limits and login guards."""
    from dijk.storage import storage_scheme

    used = False
    for index, route in enumerate(config.routes):
        used = used or bool(route.rate_limit) or route.login_guard is not None
        yield from _rules(("routes", index, "rate_limit"), route.rate_limit)
        for rule_index, rule in enumerate(route.rate_limit):
            parts = rule.key.split("+")
            needs = [p for p in parts if p in ("consumer", "api_key") or p.startswith("claim:")]
            if needs and not route.auth:
                yield (
                    ("routes", index, "rate_limit", rule_index, "key"),
                    f"{needs[0]} is only known on routes with authentication (auth is empty)",
                )
    for index, consumer in enumerate(config.consumers):
        used = used or bool(consumer.rate_limit)
        yield from _rules(("consumers", index, "rate_limit"), consumer.rate_limit)
    if used:
        try:
            storage_scheme(config.storage.url)
        except ValueError as exc:
            yield ("storage", "url"), str(exc)


def _rules(path: Path, rules: list[RateLimitRule]) -> Iterator[tuple[Path, str]]:
    seen: dict[tuple[str, str, float | None, str | None], int] = {}
    names: dict[str, int] = {}
    for index, rule in enumerate(rules):
        shape = (rule.key, rule.algorithm, rule.per_s, rule.per)
        if shape in seen:
            yield (*path, index), f"same key and window as rule {seen[shape]}"
        seen.setdefault(shape, index)
        label = rule.per if rule.per is not None else f"{rule.per_s:g}s"
        name = rule.name or f"{rule.key}-{label}"
        if name in names:
            yield (*path, index, "name"), f"policy name {name!r} is used by rule {names[name]}"
        names.setdefault(name, index)


def _audit_checks(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    """Audit sinks and alerts: credentials named by environment variable are set."""
    for index, sink in enumerate(config.audit.sinks):
        if sink.token_env is not None and not os.environ.get(sink.token_env):
            yield (
                ("audit", "sinks", index, "token_env"),
                f"environment variable {sink.token_env} is not set",
            )
    webhook = config.alerts.webhook
    if webhook is not None and webhook.secret_env and not os.environ.get(webhook.secret_env):
        yield (
            ("alerts", "webhook", "secret_env"),
            f"environment variable {webhook.secret_env} is not set",
        )


def _waf_consumer_checks(config: DijkConfig, consumers: set[str]) -> Iterator[tuple[Path, str]]:
    """WAF exclusions for some consumers name configured ones (token consumers such as
    ``jwt:<sub>`` are not configured and are taken as written)."""
    for index, route in enumerate(config.routes):
        if route.waf is None:
            continue
        for rule_index, rule in enumerate(route.waf.exclude):
            for consumer in rule.consumers:
                if ":" not in consumer and consumer not in consumers:
                    yield (
                        ("routes", index, "waf", "exclude", rule_index, "consumers"),
                        f"consumer {consumer!r} is not defined",
                    )
