"""`server.db`: the Databases of one URL in a process share one engine, so a transaction holds every table's query."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from channels.broker import Broker
from channels.seams import Identity
from server.auth.revocation import api_key_credential, login_credential, revoked_credentials
from server.auth.tables import User
from server.db import Database
from server.services import Services
from server.settings import Settings


class Rollback(Exception):
    pass


async def test_two_starts_of_one_url_share_one_engine_and_its_transactions(database_url: str) -> None:
    app, worker = Database(database_url, min_size=0), Database(database_url, min_size=0, max_size=2)
    await app.start()
    await worker.start()  # a second start of the same URL in one process (a test, a job run by hand)
    try:
        assert worker.engine is app.engine and worker.pool is app.pool
        seen_inside: list[int] = []

        async def insert_then_fail() -> None:
            async with app.transaction():
                await User.insert(User(email="never@example.com", display_name="Never committed"))
                seen_inside.append(await User.count())
                raise Rollback

        with pytest.raises(Rollback):
            await insert_then_fail()
        assert seen_inside == [1]  # the tables' queries ran in the app's transaction...
        assert await User.count() == 0  # ...and were rolled back with it
        await worker.close()  # the worker stops first; the app's queries go on on the same pool
        await User.insert(User(email="after@example.com", display_name="After the worker"))
        assert await User.count() == 1
    finally:
        await worker.close()
        await app.close()
    with pytest.raises(RuntimeError):
        _ = app.pool  # the last close closed it


async def test_the_periodic_credential_check_takes_more_sockets_than_one_statement_may_bind(
    settings: Settings,
) -> None:
    """More sockets than the 32,767 parameters one statement may bind (as `is_in(list)` would) get one answer."""
    redis = aioredis.Redis.from_url(settings.redis_url or "")
    services = Services(settings, Database(settings.database_url or "", min_size=0), redis, Broker(redis, "unused"))
    await services.db.start()
    try:
        [alive] = await User.insert(User(email="here@example.com", display_name="Still here")).returning(User.id)
        gone = [
            Identity(
                user_id=str(uuid.uuid4()), display_name="Gone", guest=False, credential=login_credential(uuid.uuid4())
            )
            for _ in range(40_000)
        ]
        kept = Identity(
            user_id=str(alive["id"]), display_name="Here", guest=False, credential=login_credential(uuid.uuid4())
        )
        deleted_key = Identity(
            user_id=str(alive["id"]), display_name="Here", guest=False, credential=api_key_credential(uuid.uuid4())
        )
        revoked = await revoked_credentials(services, [*gone, kept, deleted_key])
    finally:
        await services.db.close()
        await redis.aclose()
    assert kept.credential not in revoked
    assert deleted_key.credential in revoked
    assert {i.credential for i in gone} <= set(revoked)


async def test_a_transaction_runs_at_the_isolation_it_asks_for_and_a_nested_one_cannot_change_it(
    database_url: str,
) -> None:
    database = Database(database_url, min_size=0)
    await database.start()
    try:
        async with database.transaction(isolation="repeatable_read"):
            assert await User.raw("SHOW transaction_isolation") == [{"transaction_isolation": "repeatable read"}]
            with pytest.raises(RuntimeError, match="cannot be nested"):
                async with database.transaction(isolation="serializable"):
                    pass
            async with database.transaction():  # joins the outer one
                assert await User.raw("SHOW transaction_isolation") == [{"transaction_isolation": "repeatable read"}]
        async with database.transaction():
            assert await User.raw("SHOW transaction_isolation") == [{"transaction_isolation": "read committed"}]
    finally:
        await database.close()
