"""The ``alerts:`` configuration section.

Example: tell the security team when one client collects more than 20 attack-detection
denials in a minute, or one consumer more than 50 authentication failures::

    alerts:
      webhook: {url: "https://hooks.example/dijk", secret_env: DIJK_ALERT_SECRET}
      rules:
        - {name: waf-burst, reasons: ["waf.*"], per: client_ip, threshold: 20, window_s: 60}
        - {name: auth-failures, reasons: ["auth.*"], per: consumer, threshold: 50}
"""

from __future__ import annotations

import re
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["AlertRule", "AlertSettings", "WebhookSettings"]

_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_REASON: Final = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$|^\*$")
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

AlertKey = Literal["client_ip", "consumer", "route", "global"]
Outcome = Literal["deny", "monitor", "allow"]


def _denials() -> list[Outcome]:
    return ["deny"]


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http(s) URL that receives each alert as a JSON POST.")
    secret_env: str | None = Field(
        None,
        description="Environment variable with a secret: each POST then carries"
        " X-Dijk-Signature: sha256=<HMAC-SHA256 of the body>.",
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="Longest wait for one POST.")
    max_queue: int = Field(
        1000, ge=1, le=100_000, description="Alerts waiting for delivery at most (then dropped)."
    )
    max_backoff_s: float = Field(
        60.0, gt=0, le=3600, description="Longest pause between retries of a failed POST."
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be http(s)://host/...")
        return value

    @field_validator("secret_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("not a valid environment variable name")
        return value


class AlertRule(BaseModel):
    """Fire when more than ``threshold`` matching records share a key within ``window_s``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Rule name (in the alert and the dijk_alerts_fired metric).")
    reasons: list[str] = Field(
        description="Reason codes that count: exact (auth.invalid_token) or a prefix"
        " (waf.*); * counts every record of the chosen decisions.",
        min_length=1,
    )
    decisions: list[Outcome] = Field(
        default_factory=_denials,
        description="Decisions that count (monitor: would-be denials in monitor mode).",
    )
    per: AlertKey = Field(
        "client_ip", description="Count per client_ip, consumer, route, or global (all)."
    )
    threshold: int = Field(ge=1, description="Fire when the count goes above this.")
    window_s: float = Field(60.0, gt=0, le=86_400, description="Sliding window length.")
    cooldown_s: float = Field(
        300.0, ge=0, le=86_400, description="After firing, stay quiet this long for that key."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("names are 1-64 characters: letters, digits, '_', '.', '-'")
        return value

    @field_validator("reasons")
    @classmethod
    def _reasons(cls, value: list[str]) -> list[str]:
        for reason in value:
            if not _REASON.match(reason):
                raise ValueError(f"{reason!r} is not a reason code (area.what) or prefix (waf.*)")
        return value


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: WebhookSettings | None = Field(None, description="Where alerts are posted.")
    rules: list[AlertRule] = Field(default_factory=list, description="Alert rules.")
    include_client_ip: bool = Field(
        False,
        description="Put the raw client IP into alerts (to block it); otherwise only its"
        " pseudonym, as in the audit log.",
    )
    max_keys: int = Field(
        100_000,
        ge=100,
        le=10_000_000,
        description="Keys (clients, consumers) tracked per rule at most; the least recently"
        " seen are forgotten first.",
    )

    @model_validator(mode="after")
    def _webhook_needed(self) -> AlertSettings:
        if self.rules and self.webhook is None:
            raise ValueError("alert rules need alerts.webhook")
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate alert rule name(s): {', '.join(duplicates)}")
        return self
