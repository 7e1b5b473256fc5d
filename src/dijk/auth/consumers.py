"""Verified token subjects linked to configured consumers (``consumers[].jwt_subjects``...).

An API key or a client certificate *belongs* to a consumer; a bearer token only carries a
claim (``auth.jwt.consumer_claim``, ``sub`` by default; ``auth.introspection.consumer_claim``,
``client_id`` by default) chosen by whoever issued it. This module decides what that claim
makes of the caller, once the token is verified:

- **linked**: the value is listed in a consumer's ``jwt_subjects`` (JWT) or
  ``introspection_subjects`` (introspection). The caller *is* that consumer: its name, its
  own rate limits and quotas, its concurrency cap, its groups. Its scopes are the token's
  scopes **intersected** with the consumer's ``scopes``: the token is the issuer's grant for
  this call (it may have been down-scoped), the consumer's list is the operator's ceiling
  for this client, and neither may widen the other. Groups are the consumer's plus any the
  token carries (``groups_claim``), which an unlinked token would get anyway.
- **unlinked**: everything else keeps working as before, under the consumer name
  ``jwt:<value>`` or ``introspection:<value>``. Configured names cannot contain ``:``, so a
  token whose ``sub`` is ``admin-app`` never becomes, counts against or logs as the
  configured consumer ``admin-app`` unless that consumer lists it.

Each method is its own namespace — a ``jwt_subjects`` entry never matches an introspection
answer, nor the reverse — and a JWT subject is matched together with its issuer (the
verified ``iss``; ``auth.jwt.issuer`` today): a token of issuer B naming the subject of a
consumer of issuer A is not that consumer, whatever the subject says.

Built once per configuration; a request costs one dictionary look-up (and, when linked, one
set intersection).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dijk.config.models import ConsumerConfig, DijkConfig

JWT = "jwt"
INTROSPECTION = "introspection"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a verified token's caller is: consumer name, scopes and groups to authorize with."""

    consumer: str
    scopes: frozenset[str]
    groups: frozenset[str]
    linked: bool


@dataclass(frozen=True, slots=True)
class _Consumer:
    name: str
    scopes: frozenset[str]
    groups: frozenset[str]


class TokenConsumers:
    """(issuer, subject) → configured consumer, for one authentication method.

    ``issuer`` is ``None`` for introspection: one endpoint is one authority, and the answer
    has already been held to ``auth.introspection.issuer`` when that is set.
    """

    def __init__(
        self, method: str, links: Iterable[tuple[str | None, str, ConsumerConfig]] = ()
    ) -> None:
        self.method = method
        self._prefix = method + ":"
        self._links: dict[tuple[str | None, str], _Consumer] = {}
        for issuer, subject, consumer in links:
            # The configuration checks refuse a subject listed twice; first one wins here.
            self._links.setdefault(
                (issuer, subject),
                _Consumer(consumer.name, frozenset(consumer.scopes), frozenset(consumer.groups)),
            )

    def __len__(self) -> int:
        return len(self._links)

    @classmethod
    def for_jwt(cls, config: DijkConfig) -> TokenConsumers:
        settings = config.auth.jwt
        if settings is None:
            return cls(JWT)
        return cls(
            JWT,
            (
                (settings.issuer, subject, consumer)
                for consumer in config.consumers
                for subject in consumer.jwt_subjects
            ),
        )

    @classmethod
    def for_introspection(cls, config: DijkConfig) -> TokenConsumers:
        return cls(
            INTROSPECTION,
            (
                (None, subject, consumer)
                for consumer in config.consumers
                for subject in consumer.introspection_subjects
            ),
        )

    def caller(
        self,
        issuer: object,
        subject: str,
        scopes: frozenset[str],
        groups: frozenset[str],
    ) -> Caller:
        """The caller a verified token names; ``issuer`` is its verified ``iss`` (JWT)."""
        key = (issuer if isinstance(issuer, str) else None, subject)
        consumer = self._links.get(key) if self._links else None
        if consumer is None:
            return Caller(self._prefix + subject, scopes, groups, linked=False)
        return Caller(
            consumer.name, scopes & consumer.scopes, consumer.groups | groups, linked=True
        )


__all__ = ["INTROSPECTION", "JWT", "Caller", "TokenConsumers"]
