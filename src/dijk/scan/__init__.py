"""``dijk scan``: dynamic security testing of a running API, driven by its OpenAPI document.

``spec`` reads the document (through :mod:`dijk.openapi`), ``client`` sends bounded,
redacted requests, ``context`` holds what the checks share, and one module per area holds
the checks: ``access`` (baseline, BOLA, authentication, BFLA), ``properties`` (mass
assignment, undeclared data, conformance), ``resources``, ``ssrf`` (with ``canary``),
``exposure`` (misconfiguration, inventory), ``injection``. ``engine`` runs them in order
and builds a :class:`dijk.reporting.Report`.
"""
