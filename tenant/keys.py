"""A tenant's data key: unwrapped from the tenant's record with this process's master
keyring, cached per process (``core.caches.DATA_KEYS``). Provider credentials and webhook
endpoint secrets are encrypted with it.

A module of its own, light to import: the outgoing-webhook worker needs the key, not the
provider registry (and the provider SDKs) that :mod:`tenant.provider_configs.service`
brings in.
"""

from __future__ import annotations

import logging

from core import caches
from core.crypto import DataKey, MasterKeyMissing, WrappedKey
from core.errors import MasterKeyUnavailable
from core.runtime import Runtime
from core.tenancy import TenantContext

log = logging.getLogger(__name__)
_data_keys = caches.DATA_KEYS


def data_key(runtime: Runtime, tenant: TenantContext) -> DataKey:
    cache_key = (tenant.id, tenant.master_key_id)
    key = _data_keys.get(cache_key)
    if key is None:
        try:
            raw = runtime.keyring.unwrap(
                WrappedKey(tenant.master_key_id, tenant.wrapped_data_key),
                tenant_id=str(tenant.id),
            )
        except MasterKeyMissing as exc:
            log.error(
                "tenant %s: its data key is wrapped by master key %s, which this process's "
                "PAYMESH_MASTER_KEYS lacks; add that key to the list (after the newest) and "
                "restart, then run `paymesh crypto rotate-master-key`",
                tenant.slug, exc.key_id,
            )
            raise MasterKeyUnavailable(
                "this tenant's provider secrets are encrypted with a master key this server "
                "is not configured with; the operator must add it to PAYMESH_MASTER_KEYS"
            ) from exc
        key = DataKey(raw, tenant.slug)
        _data_keys.put(cache_key, key)
    return key  # type: ignore[return-value]
