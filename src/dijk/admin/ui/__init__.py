"""The dashboard: server-rendered pages on the admin listener under ``/ui/``.

``app.DashboardUI`` answers every ``/ui`` request the admin listener hands it: login with
the admin token, sessions and CSRF (``session.py``), page data (``views.py``, reading the
audit log and the privacy tables through the same modules as the CLI and the admin API),
Jinja2 templates and vendored static files. Nothing here is on the data plane.
"""
