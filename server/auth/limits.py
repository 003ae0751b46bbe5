"""The auth and join rate limits (SPEC section 3), counted in Redis so every server process shares them.

- Login: 429 once an email has 10 failed logins, or a client address 100, within 15 minutes
  (counted from the first failure of the window). Only failures count; a successful login
  clears its email's count. While limited, even the right password gets 429, so guessing
  cannot continue.
- Register: `register_per_hour` attempts per client address, every attempt counted.
- Join: `join_per_minute` attempts per client address, every attempt counted.

Keys carry the Redis prefix (`Services.key`); emails are hashed so a key never holds one.
"""

from __future__ import annotations

import hashlib
import logging

from server.errors import rate_limited
from server.ratelimit import RateLimiter
from server.services import Services

log = logging.getLogger("roomcast.auth")

LOGIN_WINDOW_S = 15 * 60
LOGIN_FAILURES_PER_EMAIL = 10
LOGIN_FAILURES_PER_ADDRESS = 100


def _email_key(services: Services, email: str) -> str:
    return services.key("rl", "login", "email", hashlib.sha256(email.encode()).hexdigest()[:32])


def _address_key(services: Services, address: str) -> str:
    return services.key("rl", "login", "addr", address)


async def check_login(services: Services, email: str, address: str) -> None:
    """Raise 429 if this email or address has used up its failed logins."""
    limiter = RateLimiter(services.redis)
    wait = max(
        await limiter.exceeded(_email_key(services, email), LOGIN_FAILURES_PER_EMAIL),
        await limiter.exceeded(_address_key(services, address), LOGIN_FAILURES_PER_ADDRESS),
    )
    if wait:
        log.info("auth.login_limited", extra={"client": address, "retry_after_s": wait})
        raise rate_limited(wait)


async def count_login_failure(services: Services, email: str, address: str) -> None:
    limiter = RateLimiter(services.redis)
    await limiter.hit(_email_key(services, email), LOGIN_FAILURES_PER_EMAIL, LOGIN_WINDOW_S)
    await limiter.hit(_address_key(services, address), LOGIN_FAILURES_PER_ADDRESS, LOGIN_WINDOW_S)


async def clear_login_failures(services: Services, email: str) -> None:
    await services.redis.delete(_email_key(services, email))


async def check_register(services: Services, address: str) -> None:
    await _count(services, "register", address, services.settings.register_per_hour, 3600)


async def check_join(services: Services, address: str) -> None:
    await _count(services, "join", address, services.settings.join_per_minute, 60)


async def _count(services: Services, name: str, address: str, limit: int, window_s: int) -> None:
    wait = await RateLimiter(services.redis).hit(services.key("rl", name, "addr", address), limit, window_s)
    if wait:
        log.info(f"{name}.limited", extra={"client": address, "retry_after_s": wait})
        raise rate_limited(wait)
