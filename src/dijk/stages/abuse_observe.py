"""Abuse observer (log phase, priority 2000; before the audit record is written).

Turns each finished request into the detectors' facts — client address and network,
country (offline), hashed credential, login outcome, object id, answer status — and runs
every active detector's operations as **one** storage call (one Lua script on Redis).
Findings open incidents (``dijk.abuse.resources``), which the guards enforce from then on;
the request that tripped a detector carries the finding into its audit record (a
``monitor`` entry with the reason code and explanation) and the incident goes to the alert
webhook.

Cheap for normal traffic: a credential seen from the same address and User-Agent within a
minute, or an object id the same caller read within a minute, is not observed again, and
scanning counts only the 401/404/405 answers. A request refused by an abuse guard is not
counted again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dijk.abuse.resources import AbuseResources
from dijk.abuse.settings import (
    CredentialStuffingSettings,
    EnumerationSettings,
    RouteAnomaly,
    ScanningSettings,
    TokenMisuseSettings,
)
from dijk.abuse.signals import (
    ANOMALY,
    SCANNING,
    Facts,
    Finding,
    Judge,
    Plan,
    credential_stuffing,
    enumeration,
    scanner_fingerprint,
    scanning,
    token_misuse,
)
from dijk.abuse.store import Op
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.stages.abuse_guard import USERNAME


@dataclass(frozen=True, slots=True)
class Detectors:
    """What one route (or the unmatched paths) watches."""

    scanning: ScanningSettings | None = None
    stuffing: CredentialStuffingSettings | None = None
    failure_statuses: frozenset[int] = frozenset()
    enumeration: EnumerationSettings | None = None
    id_parameter: str | None = None
    token_misuse: TokenMisuseSettings | None = None
    anomaly: RouteAnomaly | None = None

    def settings_for(
        self, reason: str
    ) -> (
        ScanningSettings
        | CredentialStuffingSettings
        | EnumerationSettings
        | TokenMisuseSettings
        | RouteAnomaly
        | None
    ):
        return {
            "abuse.anomaly": self.anomaly,
            "abuse.scanning": self.scanning,
            "abuse.credential_stuffing": self.stuffing,
            "abuse.enumeration": self.enumeration,
            "abuse.token_misuse": self.token_misuse,
        }.get(reason)


class AbuseObserveStage(Stage):
    name: ClassVar[str] = "abuse_observe"
    priority: ClassVar[int] = 2000
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.LOG})

    def __init__(self, resources: AbuseResources, detectors: Detectors) -> None:
        self._resources = resources
        self._detectors = detectors
        resources.acquire()

    async def log(self, ctx: RequestContext) -> None:
        resources = self._resources
        now = resources.clock()
        decision = ctx.decision
        if decision is not None and decision.reason.startswith("abuse."):
            await resources.sync(now)  # refused by an abuse guard: not counted again
            return
        detectors = self._detectors
        prefix = resources.prefix
        identity = ctx.identity
        credential = (identity.credential_id or identity.consumer) if identity else None
        ip = ctx.client_ip
        route = ctx.route
        user_agent = ctx.header("user-agent") or ""
        facts = Facts(
            now=now,
            route=route.name if route is not None else "",
            template=route.template if route is not None else "",
            client_ip=ip,
            network="",
            country=None,
            status=ctx.response_status,
            method=ctx.method,
            path=ctx.path,
            credential=credential,
            user_agent=user_agent,
        )
        plan = Plan()
        found: list[Finding] = []
        memo = resources.memo
        if detectors.scanning is not None:
            if detectors.scanning.fingerprints:
                tool = scanner_fingerprint(user_agent)
                if tool is not None:
                    found.append(
                        Finding(
                            SCANNING,
                            "fingerprint",
                            f"ip:{ip}",
                            "*",
                            f"The User-Agent names the scanner {tool}.",
                            {"scanner": tool},
                        )
                    )
            _add(plan, scanning(facts, detectors.scanning, prefix))
        stuffing = detectors.stuffing
        user = ctx.annotations.get(USERNAME)
        if stuffing is not None and isinstance(user, str) and decision is None:
            status = ctx.response_status
            if status in detectors.failure_statuses:
                facts.login = "failure"
            elif 200 <= status < 300:
                facts.login = "success"
            if facts.login is not None:
                facts.username = user
                facts.network = resources.network(ip)
                if facts.login == "failure":
                    facts.country = resources.country(ip)
                _add(plan, credential_stuffing(facts, stuffing, prefix))
        if detectors.enumeration is not None and detectors.id_parameter is not None:
            object_id = ctx.path_params.get(detectors.id_parameter)
            if object_id is not None and decision is None:
                caller = credential or ip
                if not memo.fresh(f"en\0{facts.route}\0{caller}\0{object_id}", now):
                    facts.object_id = object_id[:128]
                    _add(plan, enumeration(facts, detectors.enumeration, prefix))
        misuse = detectors.token_misuse
        if (
            misuse is not None
            and credential
            and not memo.fresh(f"tm\0{credential}\0{ip}\0{user_agent}", now)
        ):
            if not facts.network:
                facts.network = resources.network(ip)
            if facts.country is None:
                facts.country = resources.country(ip)
            _add(plan, token_misuse(facts, misuse, prefix))
        model = resources.anomaly
        if detectors.anomaly is not None and credential and model is not None:
            anomaly = model.observe(
                credential, facts.route, ctx.response_status, ctx.bytes_out, now
            )
            if anomaly is not None:
                found.append(
                    Finding(
                        ANOMALY,
                        "behaviour",
                        f"cred:{credential}",
                        "*",
                        anomaly.detail,
                        anomaly.values,
                    )
                )
        if plan.ops:
            found.extend(await resources.observe(plan, now))
        else:
            await resources.sync(now)
        for finding in found:
            await self._act(ctx, finding, now)

    async def _act(self, ctx: RequestContext, finding: Finding, now: float) -> None:
        settings = self._detectors.settings_for(finding.reason)
        if settings is None or settings.action == "off":
            return
        await self._resources.open(
            finding, settings.action, settings.block_s, settings.throttle_per_minute, now
        )
        ctx.findings.append({"rule_id": finding.reason, "field": f"abuse:{finding.signal}"})
        if ctx.decision is None:
            ctx.monitored.append(Decision.monitor(403, finding.reason, finding.detail))

    async def close(self) -> None:
        await self._resources.release()


def _add(plan: Plan, planned: tuple[list[Op], Judge] | None) -> None:
    if planned is not None:
        plan.add(*planned)
