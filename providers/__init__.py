"""Payment providers, each behind :class:`providers.base.PaymentProvider`.

Provider SDKs, provider HTTP payloads and signature schemes live only in this package.
"""
