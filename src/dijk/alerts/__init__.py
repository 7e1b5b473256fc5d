"""Alerts: rules over the audit records, posted to a JSON webhook.

``settings``  the ``alerts:`` configuration section (imported by ``config.models``, so this
              package imports nothing eagerly: loading a configuration stays light)
``engine``    pure counting: records and a clock in, alerts out (no I/O)
``webhook``   delivery: bounded queue, retries with backoff, optional HMAC signature

The audit log stage feeds every record to the engine and hands what fires to the webhook
poster; neither ever makes a request wait.
"""
