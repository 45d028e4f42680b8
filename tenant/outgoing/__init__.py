"""Outgoing webhooks (T19, T24): the tenant's endpoints, the events outbox and the
delivery log, signed per the Standard Webhooks spec (SPEC 3a, docs/webhooks.md).

Not :mod:`tenant.webhooks`, which is the *incoming* inbox of provider events.
"""
