"""Endpoint signing secrets: Standard Webhooks secrets (:mod:`core.standard_webhooks`,
base64 of 32 random bytes), encrypted at rest
with the tenant's data key like provider credentials (AES-256-GCM, bound to the tenant,
the endpoint and the field), shown in clear only when created or rotated."""

from __future__ import annotations

import uuid
from datetime import datetime

from core import standard_webhooks
from core.db import utcnow
from core.runtime import Runtime
from core.tenancy import TenantContext
from tenant.keys import data_key

SECRET_BYTES = 32
#: What binds a ciphertext to its use (the associated data's "provider" part).
_SCOPE = "webhook_endpoint"


def new_secret() -> str:
    return standard_webhooks.new_secret(SECRET_BYTES)


def encrypt(runtime: Runtime, tenant: TenantContext, endpoint_id: uuid.UUID,
            secret: str) -> bytes:
    return data_key(runtime, tenant).encrypt(_SCOPE, f"secret:{endpoint_id}", secret)


def decrypt(runtime: Runtime, tenant: TenantContext, endpoint_id: uuid.UUID,
            blob: bytes) -> str:
    return data_key(runtime, tenant).decrypt(_SCOPE, f"secret:{endpoint_id}", blob)


def live_secrets(runtime: Runtime, tenant: TenantContext, endpoint_id: uuid.UUID,
                 current: bytes, previous: bytes | None, previous_expires_at: datetime | None,
                 now: datetime | None = None) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the one before
    the last rotation while its overlap lasts."""
    found = [decrypt(runtime, tenant, endpoint_id, current)]
    if previous is not None and previous_expires_at is not None \
            and previous_expires_at > (now or utcnow()):
        found.append(decrypt(runtime, tenant, endpoint_id, previous))
    return found
