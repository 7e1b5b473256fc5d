"""The ``abuse:`` settings: top level (shared state, scanning, reputation) and per route.

Example (the demo's login and account routes)::

    abuse:
      scanning: {action: block}
    routes:
      - name: login
        abuse:
          credential_stuffing: {action: block}
      - name: account
        abuse:
          enumeration: {action: block}
          token_misuse: {action: monitor}

Every detector has an ``action``: ``off``, ``monitor`` (finding in the audit record, an
incident in the admin API and an alert; the request goes on), ``throttle`` (the subject may
send ``throttle_per_minute`` requests a minute, then 429) or ``block`` (403 with
``Retry-After`` for ``block_s``). Route detectors default to ``monitor``: a new detector
watches before it refuses.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AbuseAction",
    "AbuseSettings",
    "AnomalySettings",
    "CredentialStuffingSettings",
    "EnumerationSettings",
    "ReputationSettings",
    "RouteAbuse",
    "RouteAnomaly",
    "ScanningSettings",
    "TokenMisuseSettings",
]

AbuseAction = Literal["off", "monitor", "throttle", "block"]
_DAY = 86_400.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class _Detector(_Model):
    action: AbuseAction = Field(
        default="monitor",
        description="off, monitor (finding, incident and alert only), throttle (429 past "
        "throttle_per_minute) or block (403 with Retry-After for block_s).",
    )
    block_s: float = Field(
        default=900, gt=0, le=7 * _DAY, description="How long an incident lasts (block, throttle)."
    )
    throttle_per_minute: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="With action throttle: requests a minute the subject keeps "
        "(counted per gateway instance).",
    )


class CredentialStuffingSettings(_Detector):
    """Login routes: many accounts tried, from one address, one network or everywhere."""

    window_s: float = Field(
        default=600, ge=10, le=_DAY, description="Window of the short-term counts."
    )
    max_accounts_per_address: int = Field(
        default=5, ge=1, description="Distinct usernames tried from one address in window_s."
    )
    max_accounts_per_network: int = Field(
        default=10,
        ge=1,
        description="Distinct usernames tried from one /24 (IPv4) or /48 (IPv6) in window_s.",
    )
    max_accounts_per_country: int = Field(
        default=100,
        ge=1,
        description="Distinct usernames failing from one country in window_s "
        "(only while the route's failure ratio is at least min_failure_ratio).",
    )
    min_failed_accounts: int = Field(
        default=20,
        ge=1,
        description="Route-wide: distinct usernames failing in window_s needed before the "
        "route is under attack (and baseline_factor times the route's baseline).",
    )
    baseline_accounts: float = Field(
        default=3,
        ge=0,
        description="Distinct failing usernames per window_s expected on this route before "
        "it has a day of history; the learnt baseline replaces it when higher.",
    )
    baseline_factor: float = Field(
        default=5, ge=1, description="Route-wide: how far above the baseline is an attack."
    )
    min_failure_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Route-wide and per country: share of failed logins in window_s needed.",
    )
    max_failed_accounts_per_day: int = Field(
        default=1000,
        ge=1,
        description="Low and slow: distinct usernames failing on the route in a day.",
    )
    max_addresses_per_account: int = Field(
        default=10,
        ge=1,
        description="Distinct addresses failing for one username in window_s.",
    )
    max_successes_per_address: int = Field(
        default=5,
        ge=1,
        description="Distinct usernames logging in successfully from one address in window_s.",
    )
    takeover_failures: int = Field(
        default=10,
        ge=1,
        description="A success after this many failures for the account in window_s, from "
        "a network it never logged in from, is a takeover finding.",
    )
    remember_s: float = Field(
        default=30 * _DAY,
        gt=0,
        le=400 * _DAY,
        description="How long a successful login's (username, network) pair stays known: "
        "during a route-wide incident known pairs still log in.",
    )


class EnumerationSettings(_Detector):
    """Object routes (path templates with ids): one caller walking through many ids."""

    window_s: float = Field(default=600, ge=10, le=_DAY, description="Window of the counts.")
    max_distinct_ids: int = Field(
        default=50, ge=2, description="Distinct ids one caller may request in window_s."
    )
    sequential_run: int = Field(
        default=20,
        ge=3,
        description="Consecutive requests whose integer id differs by one from the last: a walk.",
    )
    max_miss_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of 403/404 answers in window_s (with at least min_requests).",
    )
    min_requests: int = Field(
        default=20, ge=1, description="Requests in window_s before max_miss_ratio applies."
    )


class TokenMisuseSettings(_Detector):
    """One credential (API key, token) used from too many places."""

    window_s: float = Field(default=600, ge=10, le=_DAY, description="Window of the counts.")
    max_countries: int = Field(
        default=2, ge=1, description="Countries one credential may be used from in window_s."
    )
    max_networks: int = Field(
        default=20,
        ge=1,
        description="Networks (/24, /48) one credential may be used from in window_s.",
    )
    max_user_agents: int = Field(
        default=10, ge=1, description="Distinct User-Agent values on one credential in window_s."
    )
    travel_s: float = Field(
        default=300,
        ge=0,
        le=_DAY,
        description="Impossible travel: a use from another country within this many seconds "
        "of the last one (0: off).",
    )


class ScanningSettings(_Detector):
    """Bursts of 401/404/405 answers, on routes and on paths that match no route."""

    action: AbuseAction = Field(
        default="off",
        description="off (the default), monitor, throttle or block; applies to every route "
        "and to requests that match no route.",
    )
    window_s: float = Field(default=60, ge=1, le=_DAY, description="Window of the counts.")
    max_errors: int = Field(
        default=50,
        ge=1,
        description="401/404/405 answers one address or credential may get in window_s.",
    )
    statuses: list[int] = Field(
        default_factory=lambda: [401, 404, 405],
        description="Answer statuses that count as probing.",
    )
    fingerprints: bool = Field(
        default=True,
        description="A request whose User-Agent names a known scanner (sqlmap, nikto, "
        "nuclei...) is a finding at once.",
    )


class ReputationSettings(_Model):
    directory: str | None = Field(
        default=None,
        description="Directory of address lists (one IP or CIDR a line, '#' comments; "
        "FireHOL .netset/.ipset and Tor exit-addresses files read as they are). Relative to "
        "the configuration file. Files are re-read when they change.",
    )
    action: AbuseAction = Field(
        default="block", description="What a listed address gets: off, monitor or block."
    )
    reload_interval_s: float = Field(
        default=10,
        ge=1,
        le=3600,
        description="How often the files' modification times are looked at.",
    )


class AnomalySettings(_Model):
    """The behaviour model shared by the routes whose ``abuse.anomaly`` is on."""

    interval_s: float = Field(
        default=10,
        ge=0.5,
        le=3600,
        description="Each consumer's behaviour is summed up and scored once per interval.",
    )
    learning_intervals: int = Field(
        default=200,
        ge=1,
        description="Intervals (all consumers together) the model learns from before it "
        "reports anything; learnt again after a restart.",
    )
    consumer_learning_intervals: int = Field(
        default=20,
        ge=1,
        description="Intervals of a consumer's own behaviour before its anomalies count.",
    )
    threshold: float = Field(
        default=0.7,
        gt=0,
        lt=1,
        description="Anomaly score (0-1, HalfSpaceTrees) at or above which an interval is "
        "an anomaly.",
    )
    max_consumers: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description="Consumers whose behaviour is tracked (least recently seen forgotten).",
    )
    state_file: str | None = Field(
        default=None,
        description="JSON file keeping each consumer's baseline and known endpoints across "
        "restarts (relative to the configuration file); none: kept in memory only.",
    )


class RouteAnomaly(_Detector):
    """This route's requests feed the behaviour model (abuse.anomaly)."""


class AbuseSettings(_Model):
    key_prefix: str = Field(
        default="dijk:abuse:",
        max_length=64,
        description="Prefix of every abuse key in storage.url (several gateways sharing a "
        "Redis database for different sites must use different prefixes).",
    )
    ipv4_prefix: int = Field(default=24, ge=8, le=32, description="IPv4 network size counted.")
    ipv6_prefix: int = Field(default=48, ge=16, le=128, description="IPv6 network size counted.")
    window_slices: int = Field(
        default=4,
        ge=2,
        le=12,
        description="Each window is kept as this many slices: counts cover between "
        "(slices-1)/slices of the window and all of it.",
    )
    max_memory_keys: int = Field(
        default=200_000,
        ge=1000,
        le=10_000_000,
        description="memory://: most abuse keys held (oldest dropped first; never a refusal).",
    )
    scanning: ScanningSettings = Field(
        default_factory=ScanningSettings,
        description="Probing and scanning detection on every route and unmatched paths.",
    )
    reputation: ReputationSettings = Field(
        default_factory=ReputationSettings,
        description="Addresses refused or flagged because local lists name them.",
    )
    anomaly: AnomalySettings = Field(
        default_factory=AnomalySettings,
        description="The behavioural anomaly model (river HalfSpaceTrees) of routes with "
        "abuse.anomaly.",
    )

    @property
    def global_active(self) -> bool:
        return self.scanning.action != "off" or (
            self.reputation.directory is not None and self.reputation.action != "off"
        )


class RouteAbuse(_Model):
    credential_stuffing: CredentialStuffingSettings | None = Field(
        default=None,
        description="Credential stuffing on a login route (abuse.credential_stuffing); the "
        "username field and failure statuses are the route's login_guard ones.",
    )
    enumeration: EnumerationSettings | None = Field(
        default=None,
        description="Enumeration of object ids on a path template route (abuse.enumeration).",
    )
    token_misuse: TokenMisuseSettings | None = Field(
        default=None,
        description="One credential used from many countries, networks or user agents "
        "(abuse.token_misuse).",
    )
    anomaly: RouteAnomaly | None = Field(
        default=None,
        description="A consumer behaving unlike itself on the routes that have this "
        "(abuse.anomaly): rate, errors, endpoints, new endpoints, response sizes, hour.",
    )
