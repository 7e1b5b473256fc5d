"""Pipeline: the Stage contract, phases, decisions and the ordered runner."""

from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Action, Decision
from dijk.pipeline.pipeline import Pipeline
from dijk.pipeline.stage import DependencyUnavailable, OnError, Phase, Stage

__all__ = [
    "Action",
    "Decision",
    "DependencyUnavailable",
    "Identity",
    "OnError",
    "Phase",
    "Pipeline",
    "RequestContext",
    "Stage",
]
