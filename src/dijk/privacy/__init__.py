"""Privacy (GDPR/AVG): the data map, pseudonyms, key material and the reports built on them.

``settings``    the ``privacy:`` configuration (top level and per route)
``keys``        the pseudonym key, sealed at rest by the key ring (:mod:`dijk.crypto`)
``pseudonyms``  keyed pseudonyms of data subjects and clients
``endpoint``    the path template a request is filed under
``db``          the privacy tables in the audit database (SQLite or PostgreSQL)
``datamap``     in-memory aggregation, periodic flush
``resources``   what the privacy stages of one configuration share
``contract``    fields an OpenAPI response schema declares
``report``      ``dijk privacy report``: Art. 30 register and data-minimisation findings
``breach``      ``dijk breach report``: what was exposed, to whom, and the 72-hour deadline

The stage itself is :mod:`dijk.stages.privacy`; detection and masking are pure, in
:mod:`dijk.detect.pii` and :mod:`dijk.detect.masking`. This package imports nothing
from ``proxy/`` and nothing at import time (the configuration models import ``settings``).
"""
