"""Rate limiting: pure algorithms, atomic backends (memory, Redis/Lua), compiled policies.

Stages (:mod:`dijk.stages.ratelimit`, :mod:`dijk.stages.login_guard`) build on this; it
knows nothing about HTTP servers.
"""

from dijk.ratelimit.algorithms import Algorithm, Outcome
from dijk.ratelimit.backend import Bucket, HitResult, Limiter, MemoryLimiter, open_limiter

__all__ = [
    "Algorithm",
    "Bucket",
    "HitResult",
    "Limiter",
    "MemoryLimiter",
    "Outcome",
    "open_limiter",
]
