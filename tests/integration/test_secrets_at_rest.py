"""Secrets: nothing readable in a database dump; master-key rotation keeps them usable."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from sqlalchemy import select

from core.crypto import generate_key
from core.db import with_database
from tests.integration.test_cli import run_cli

pytestmark = pytest.mark.asyncio

SECRETS = {
    "secret_key": "sk_sandbox_plaintext_canary_1234567890",
    "webhook_secret": "whsec_plaintext_canary_abcdefghijkl",
}


def pg_dump_binary(pg_server) -> str:  # noqa: ANN001
    if pg_server is not None:
        return str(pg_server.bin_dir / "pg_dump")
    found = shutil.which("pg_dump")
    assert found, "pg_dump is needed for the dump scan"
    return found


def dump(binary: str, url: str) -> bytes:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    args = [binary, "-h", host, "-U", parts.username or "postgres", "-d", parts.path.lstrip("/")]
    if parts.port:
        args += ["-p", str(parts.port)]
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    result = subprocess.run(args, capture_output=True, env=env, check=True, timeout=120)
    return result.stdout


async def test_dump_holds_no_plaintext_secret(client, make_tenant, platform, pg_server):
    tenant = await make_tenant()
    response = await client.put("/v1/providers/sandbox", json=SECRETS, headers=tenant.headers)
    assert response.status_code == 200
    from core.runtime import get_runtime
    from owner.tenants.models import Tenant
    from owner.tenants.service import tenant_db_url

    async with get_runtime().owner_session() as session:
        row = (await session.scalars(select(Tenant).where(Tenant.slug == tenant.slug))).one()
        tenant_url = tenant_db_url(row)
    binary = pg_dump_binary(pg_server)
    for url in (tenant_url, platform["PAYMESH_DATABASE_URL"]):
        content = dump(binary, url)
        assert b"provider_configs" in content or b"tenants" in content
        for value in SECRETS.values():
            assert value.encode() not in content
            assert value[-12:].encode() not in content


async def test_master_key_rotation_keeps_credentials_readable(client, make_tenant, platform,
                                                              monkeypatch):
    tenant = await make_tenant()
    put = await client.put("/v1/providers/cash", json={}, headers=tenant.headers)
    assert put.status_code == 200
    await client.put("/v1/providers/sandbox", json=SECRETS, headers=tenant.headers)
    old = platform["PAYMESH_MASTER_KEYS"]
    new = generate_key()
    result = run_cli(["crypto", "rotate-master-key"], env={"PAYMESH_MASTER_KEYS": f"{new},{old}"})
    assert result.returncode == 0, result.stderr
    assert "rewrapped" in result.stdout
    # a process that knows only the new key can still decrypt every credential
    from core.crypto import MasterKeyring, WrappedKey
    from core.runtime import get_runtime
    from owner.tenants.models import Tenant
    from owner.tenants.service import forget_cached_tenants

    forget_cached_tenants()
    only_new = MasterKeyring([new])
    async with get_runtime().owner_session() as session:
        rows = (await session.scalars(select(Tenant).where(Tenant.status == "active"))).all()
        assert rows and all(r.master_key_id == only_new.current_id for r in rows)
        row = next(r for r in rows if r.slug == tenant.slug)
        raw = only_new.unwrap(WrappedKey(row.master_key_id, row.wrapped_data_key),
                              tenant_id=str(row.id))
    from core.crypto import DataKey
    from tenant.provider_configs.models import ProviderConfigRow

    tenant_url = with_database(platform["PAYMESH_DATABASE_URL"],
                               platform["PAYMESH_TENANT_DB_PREFIX"]
                               + tenant.slug.replace("-", "_"))
    async with get_runtime().tenant_session(tenant_url) as session:
        config = (await session.scalars(select(ProviderConfigRow).where(
            ProviderConfigRow.provider_code == "sandbox"))).one()
    assert DataKey(raw, tenant.slug).decrypt("sandbox", "secret_key",
                                             config.secret_key_enc) == SECRETS["secret_key"]
    # the running API (old + new keys configured in-process) keeps serving
    monkeypatch.setattr(get_runtime(), "keyring", MasterKeyring([new, old]))
    from core import caches

    caches.DATA_KEYS.clear()
    tested = await client.post("/v1/providers/cash/test", headers=tenant.headers)
    assert tested.status_code == 200 and tested.json()["ok"] is True
