"""One owner call must not break provisioning or start-up; installations never collide.

Registration checks a server (reach, version, CREATEDB), an inactive or unreachable
server gets no new tenants, ``paymesh db upgrade`` reports a broken server and migrates
the rest, and two installations on one server name their databases apart.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core import migrate
from core.db import autocommit_connection, with_database
from tests.conftest import unique_slug, worker_tag
from tests.integration.test_cli import run_cli
from tests.integration.test_owner_catalog import assert_error

pytestmark = pytest.mark.asyncio


def as_role(url: str, role: str, password: str) -> str:
    """The server URL, logging in as another role."""
    parsed = make_url(url).set(username=role, password=password)
    return parsed.render_as_string(hide_password=False)


@pytest_asyncio.fixture
async def make_role(pg_url: str) -> AsyncIterator[Callable]:
    """Creates login roles on the test server for one test; drops them after."""
    made: list[str] = []

    async def factory(stem: str, options: str) -> str:
        name = f"pm_{stem}_{worker_tag()}"
        async with autocommit_connection(pg_url) as conn:
            await conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
            await conn.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD 'pw' {options}"))
        made.append(name)
        return as_role(pg_url, name, "pw")

    yield factory
    async with autocommit_connection(pg_url) as conn:
        for name in made:
            await conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))


async def cluster_names(client, owner_headers) -> set[str]:  # noqa: ANN001
    listed = await client.get("/v1/owner/clusters", headers=owner_headers)
    assert listed.status_code == 200, listed.text
    return {c["name"] for c in listed.json()["data"]}


async def test_registration_refuses_an_unreachable_server_or_a_role_without_createdb(
        client, owner_headers, make_role):
    name = f"bad-{worker_tag()}"
    refused = await client.post("/v1/owner/clusters", headers=owner_headers, json={
        "name": name, "url": "postgresql://postgres:secret-pw@127.0.0.1:1/postgres"})
    error = assert_error(refused, 422, "cluster_unreachable")
    assert error["param"] == "url" and "secret-pw" not in refused.text
    weak = await make_role("nocreate", "NOCREATEDB")
    refused = await client.post("/v1/owner/clusters", headers=owner_headers,
                                json={"name": name, "url": weak})
    assert_error(refused, 422, "cluster_privilege_missing")
    assert name not in await cluster_names(client, owner_headers)  # nothing stored


async def test_inactive_and_unreachable_servers_get_no_tenants_and_db_upgrade_goes_on(
        client, owner_headers, make_tenant, make_role, pg_url, platform):
    spare, gone = f"spare-{worker_tag()}", f"gone-{worker_tag()}"
    created = await client.post("/v1/owner/clusters", headers=owner_headers,
                                json={"name": spare, "url": pg_url})
    assert created.status_code == 201, created.text
    # inactive: skipped by placement, though it has the fewest tenants
    patched = await client.patch(f"/v1/owner/clusters/{spare}", headers=owner_headers,
                                 json={"is_active": False})
    assert patched.status_code == 200, patched.text
    assert patched.json()["is_active"] is False
    assert (await make_tenant("inact")).data["cluster"] != spare
    # active again: the emptiest server gets the next tenant
    patched = await client.patch(f"/v1/owner/clusters/{spare}", headers=owner_headers,
                                 json={"is_active": True})
    assert patched.status_code == 200 and patched.json()["is_active"] is True
    placed = await make_tenant("spare")
    assert placed.data["cluster"] == spare
    # a server with tenants cannot be deleted; the default one never
    assert_error(await client.delete(f"/v1/owner/clusters/{spare}", headers=owner_headers),
                 409, "cluster_not_empty")
    assert_error(await client.delete("/v1/owner/clusters/default", headers=owner_headers),
                 409, "cluster_default")
    assert_error(await client.patch("/v1/owner/clusters/nope-nope", headers=owner_headers,
                                    json={"is_active": False}), 404)
    # the name for the switch, `active`, is the same field; a contradiction is refused
    assert_error(await client.patch(f"/v1/owner/clusters/{spare}", headers=owner_headers,
                                    json={"active": False, "is_active": True}), 400)
    assert_error(await client.patch(f"/v1/owner/clusters/{spare}", headers=owner_headers,
                                    json={"enabled": False}), 400)
    toggled = await client.patch(f"/v1/owner/clusters/{spare}", headers=owner_headers,
                                 json={"active": False})
    assert toggled.status_code == 200 and toggled.json()["is_active"] is False, toggled.text
    toggled = await client.patch(f"/v1/owner/clusters/{spare}", headers=owner_headers,
                                 json={"active": True})
    assert toggled.status_code == 200 and toggled.json()["is_active"] is True, toggled.text

    # a server that stops answering (its role may no longer log in) is skipped
    role_url = await make_role("gone", "CREATEDB")
    created = await client.post("/v1/owner/clusters", headers=owner_headers,
                                json={"name": gone, "url": role_url})
    assert created.status_code == 201, created.text
    role = make_url(role_url).username
    async with autocommit_connection(pg_url) as conn:
        await conn.execute(text(f'ALTER ROLE "{role}" NOLOGIN'))
    assert (await make_tenant("skipgone")).data["cluster"] not in (gone, None)
    named = await client.post("/v1/owner/tenants", headers=owner_headers, json={
        "slug": unique_slug("named"), "name": "N", "default_currency": "USD", "cluster": gone})
    assert_error(named, 422, "cluster_unreachable")
    # re-activating checks the server again
    off = await client.patch(f"/v1/owner/clusters/{gone}", headers=owner_headers,
                             json={"is_active": False})
    assert off.status_code == 200, off.text
    assert_error(await client.patch(f"/v1/owner/clusters/{gone}", headers=owner_headers,
                                    json={"is_active": True}), 422, "cluster_unreachable")

    # db upgrade: the broken server is named, the others are migrated, exit status 1
    url = with_database(pg_url, platform["PAYMESH_TENANT_DB_PREFIX"]
                        + placed.slug.replace("-", "_"))
    await migrate.downgrade(url, "tenant", "-1")
    assert await migrate.current(url, "tenant") != migrate.head("tenant")
    result = run_cli(["db", "upgrade"], timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cluster {gone}" in result.stderr
    assert await migrate.current(url, "tenant") == migrate.head("tenant")

    # an empty server can be deleted; later tests in this worker keep to the default one
    deleted = await client.delete(f"/v1/owner/clusters/{gone}", headers=owner_headers)
    assert deleted.status_code == 204, deleted.text
    assert gone not in await cluster_names(client, owner_headers)
    await client.patch(f"/v1/owner/clusters/{spare}", headers=owner_headers,
                       json={"is_active": False})


async def test_a_database_name_taken_on_the_server_is_a_409(client, owner_headers, pg_url,
                                                            platform):
    slug = unique_slug("taken")
    name = platform["PAYMESH_TENANT_DB_PREFIX"] + slug.replace("-", "_")
    async with autocommit_connection(pg_url) as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        response = await client.post("/v1/owner/tenants", headers=owner_headers, json={
            "slug": slug, "name": "Taken", "default_currency": "USD"})
        assert_error(response, 409, "database_exists")
        assert_error(await client.get(f"/v1/owner/tenants/{slug}", headers=owner_headers), 404)
    finally:
        async with autocommit_connection(pg_url) as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_two_installations_on_one_server_name_their_databases_apart(pg_url, platform):
    """Two owner databases with the default names (no overrides): the same tenant slug
    gets a database per installation, and both installations migrate and serve it."""
    owners = [f"paymesh_owner_{worker_tag()}_inst{i}" for i in (1, 2)]
    slug = "same-clinic"
    created: list[str] = []
    async with autocommit_connection(pg_url) as conn:
        for owner in owners:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{owner}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{owner}"'))
    try:
        names = []
        for owner in owners:
            env = {"PAYMESH_DATABASE_URL": with_database(pg_url, owner),
                   "PAYMESH_TEMPLATE_DB": "", "PAYMESH_TENANT_DB_PREFIX": ""}
            upgraded = run_cli(["db", "upgrade"], env, timeout=300)
            assert upgraded.returncode == 0, upgraded.stderr
            made = run_cli(["tenants", "create", slug, "--name", "Same"], env)
            assert made.returncode == 0, made.stderr
            match = re.search(r"\(database (\S+)\)", made.stderr)
            assert match, made.stderr
            names.append(match.group(1))
            async with autocommit_connection(with_database(pg_url, owner)) as conn:
                iid = await conn.scalar(text("SELECT installation_id FROM installation"))
            created += [names[-1], f"paymesh_template_{iid}"]
            assert names[-1] == f"paymesh_t_{iid}_same_clinic"
        assert names[0] != names[1]
        for owner, name in zip(owners, names, strict=True):
            env = {"PAYMESH_DATABASE_URL": with_database(pg_url, owner),
                   "PAYMESH_TEMPLATE_DB": "", "PAYMESH_TENANT_DB_PREFIX": ""}
            again = run_cli(["db", "upgrade"], env, timeout=300)
            assert again.returncode == 0, again.stderr
            listed = run_cli(["tenants", "list"], env)
            assert listed.returncode == 0 and slug in listed.stdout, listed.stderr
            url = with_database(pg_url, name)
            assert await migrate.current(url, "tenant") == migrate.head("tenant")
    finally:
        async with autocommit_connection(pg_url) as conn:
            for name in [*created, *owners]:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
