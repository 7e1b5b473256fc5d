"""Identity resources compiled once per configuration and shared by every route's stages.

Built when the configuration loads (so ``dijk config validate`` reports an unusable JWKS
file or key with the rest of the errors): the JWT verifier with its key set, the
introspection client, the client-certificate ring and the revocation list; the verifier and
the introspection client carry the index of token subjects linked to consumers
(:mod:`dijk.auth.consumers`). Nothing here connects anywhere yet: a JWKS URL is fetched,
the introspection endpoint and Redis are reached, on first use inside the event loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dijk.auth.certificates import CertificateRing
from dijk.auth.consumers import TokenConsumers
from dijk.auth.introspection import Introspector
from dijk.auth.jwks import JwksError, JwksSource
from dijk.auth.jwt import JwtVerifier, rules_from_config
from dijk.auth.revocation import RevocationList
from dijk.config.loader import ConfigError, ConfigIssue
from dijk.config.models import DijkConfig


@dataclass(slots=True)
class IdentityResources:
    revocations: RevocationList
    jwt: JwtVerifier | None = None
    introspection: Introspector | None = None
    certificates: CertificateRing | None = None

    @classmethod
    def from_config(cls, config: DijkConfig, source: str = "") -> IdentityResources:
        issues: list[ConfigIssue] = []
        jwt: JwtVerifier | None = None
        settings = config.auth.jwt
        if settings is not None:
            try:
                if settings.jwks_file is not None:
                    keys = JwksSource.from_file(settings.jwks_file, settings.algorithms)
                else:
                    assert settings.jwks_url is not None
                    keys = JwksSource(
                        settings.algorithms,
                        url=settings.jwks_url,
                        timeout_s=settings.jwks_timeout_s,
                        refresh_interval_s=settings.jwks_refresh_interval_s,
                        max_age_s=settings.jwks_max_age_s,
                    )
            except JwksError as error:
                issues.append(ConfigIssue(source, None, "auth.jwt.jwks_file", str(error)))
            else:
                jwt = JwtVerifier(
                    rules_from_config(settings),
                    keys,
                    cache_size=settings.cache_size,
                    consumers=TokenConsumers.for_jwt(config),
                )
        introspection: Introspector | None = None
        endpoint = config.auth.introspection
        if endpoint is not None:
            secret = os.environ.get(endpoint.client_secret_env, "")
            if not secret:
                issues.append(
                    ConfigIssue(
                        source,
                        None,
                        "auth.introspection.client_secret_env",
                        f"environment variable {endpoint.client_secret_env} is not set",
                    )
                )
            else:
                introspection = Introspector(
                    endpoint, secret, consumers=TokenConsumers.for_introspection(config)
                )
        if issues:
            raise ConfigError(issues)
        return cls(
            revocations=RevocationList.from_url(config.storage.url, config.storage.timeout_s),
            jwt=jwt,
            introspection=introspection,
            certificates=CertificateRing(config.consumers),
        )
