"""Which abuse stages a route gets (the three stages each live in their own module).

- ``abuse_guard`` (7200): address incidents and reputation lists; login incidents;
- ``abuse_credential`` (5450): credential incidents (routes with authentication);
- ``abuse_observe`` (2000, log phase): the detectors.

Requests that match no route get the guard and the observer too when scanning or
reputation is on, so that a scanner's guesses count and a blocked scanner sees one answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dijk.abuse.resources import AbuseResources
from dijk.config.models import DijkConfig, LoginGuardConfig, RouteConfig
from dijk.pipeline.stage import Stage
from dijk.stages.abuse_credential import AbuseCredentialStage
from dijk.stages.abuse_guard import AbuseGuardStage
from dijk.stages.abuse_observe import AbuseObserveStage, Detectors

if TYPE_CHECKING:
    from dijk.stages.audit import AuditResources

__all__ = ["abuse_stages", "default_abuse_stages", "open_abuse"]


def open_abuse(
    config: DijkConfig, source: str, audit: AuditResources | None
) -> AbuseResources | None:
    """The shared abuse resources, when any route or the global settings use them."""
    if not (config.abuse.global_active or any(route.abuse for route in config.routes)):
        return None
    anomaly = any(
        route.abuse is not None and _active(route.abuse.anomaly) and route.auth
        for route in config.routes
    )
    resources = AbuseResources(
        config.abuse, config.storage.url, config.storage.timeout_s, source, anomaly=anomaly
    )
    if audit is not None and config.alerts.webhook is not None:
        resources.notify = audit.notify
    return resources


def _active(settings: object) -> bool:
    return settings is not None and getattr(settings, "action", "off") != "off"


def abuse_stages(
    config: DijkConfig, route: RouteConfig, resources: AbuseResources | None
) -> list[Stage]:
    if resources is None:
        return []
    settings = config.abuse
    scanning = settings.scanning if settings.scanning.action != "off" else None
    own = route.abuse
    stuffing = own.credential_stuffing if own is not None else None
    enumeration = own.enumeration if own is not None else None
    misuse = own.token_misuse if own is not None else None
    anomaly = own.anomaly if own is not None and _active(own.anomaly) else None
    stuffing = stuffing if _active(stuffing) else None
    enumeration = enumeration if _active(enumeration) else None
    misuse = misuse if _active(misuse) else None
    login = route.login_guard if route.login_guard is not None else LoginGuardConfig()
    parameter = None
    if enumeration is not None:
        template = route.match.path_template
        names = _parameters(template or "")
        if not names:
            raise ValueError(
                "abuse.enumeration needs a match.path_template with an id, "
                "e.g. /api/v1/accounts/{id}"
            )
        parameter = names[-1]  # the object's own id is the last parameter
    if misuse is not None and not route.auth:
        raise ValueError("abuse.token_misuse needs a route with auth (it watches credentials)")
    if anomaly is not None and not route.auth:
        raise ValueError("abuse.anomaly needs a route with auth (it watches consumers)")
    detectors = Detectors(
        scanning=scanning,
        stuffing=stuffing,
        failure_statuses=frozenset(login.failure_statuses),
        enumeration=enumeration,
        id_parameter=parameter,
        token_misuse=misuse,
        anomaly=anomaly,
    )
    if not (scanning or stuffing or enumeration or misuse or anomaly or resources.reputation):
        return []
    stages: list[Stage] = [
        AbuseGuardStage(
            resources, route.name, login.username_field if stuffing is not None else None
        ),
        AbuseObserveStage(resources, detectors),
    ]
    if route.auth:
        stages.append(AbuseCredentialStage(resources, route.name))
    return stages


def default_abuse_stages(config: DijkConfig, resources: object) -> list[Stage]:
    """For requests that match no route: scanning counts, address incidents apply."""
    abuse = getattr(resources, "abuse", None)
    if not isinstance(abuse, AbuseResources) or not config.abuse.global_active:
        return []
    scanning = config.abuse.scanning if config.abuse.scanning.action != "off" else None
    return [AbuseGuardStage(abuse), AbuseObserveStage(abuse, Detectors(scanning=scanning))]


def _parameters(template: str) -> list[str]:
    return [
        segment[1:-1]
        for segment in template.split("/")
        if segment.startswith("{") and segment.endswith("}")
    ]
