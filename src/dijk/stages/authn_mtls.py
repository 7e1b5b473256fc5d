"""Client-certificate authentication (priority 6040): a verified certificate names a consumer.

The TLS listener (``listen.tls.client_ca_file``) verifies the chain during the handshake;
this stage maps the verified certificate to a consumer through
:class:`~dijk.auth.certificates.CertificateRing` and checks the revocation list
(``cert:<16 hex of the fingerprint>``). No certificate: not this method. A certificate that
no consumer claims: 401 ``auth.unknown_certificate`` — a presented credential that does not
identify anyone is refused rather than ignored.

``hide_credentials`` has nothing to remove here: the certificate ends at the TLS listener
and is never part of the request sent upstream. On a route that also accepts other methods,
their stages remove any key or token sent along with the certificate.
"""

from __future__ import annotations

from typing import ClassVar

from dijk.auth.certificates import CertificateRing
from dijk.auth.revocation import RevocationList
from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

CHALLENGE = ("WWW-Authenticate", 'ClientCertificate realm="dijk"')


class MtlsStage(Stage):
    name: ClassVar[str] = "authn_mtls"
    priority: ClassVar[int] = 6040
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(self, ring: CertificateRing, revocations: RevocationList | None) -> None:
        self._ring = ring
        self._revocations = revocations
        if revocations is not None:
            revocations.attach()

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        if ctx.identity is not None:
            return None
        tls = ctx.tls
        fingerprint = tls.get("client_cert_sha256") if tls else None
        if tls is None or not isinstance(fingerprint, str):
            return None
        owner = self._ring.find(tls)
        if owner is None:
            return Decision.deny(
                401,
                "auth.unknown_certificate",
                "The client certificate is not bound to a consumer.",
                (CHALLENGE,),
            )
        credential_id = "cert:" + fingerprint[:16].lower()
        if self._revocations is not None and await self._revocations.credential_revoked(
            credential_id
        ):
            return Decision.deny(
                401,
                "auth.certificate_revoked",
                "The client certificate has been revoked.",
                (CHALLENGE,),
            )
        ctx.identity = Identity(
            consumer=owner.consumer,
            method="mtls",
            scopes=owner.scopes,
            credential_id=credential_id,
            groups=owner.groups,
        )
        return None

    async def close(self) -> None:
        if self._revocations is not None:
            await self._revocations.detach()
