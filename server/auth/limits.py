"""The auth and join rate limits (docs/api.md), counted in Redis so every server process shares them.

- Login: 429 once an email has 10 failed logins, or a client address 100, within 15 minutes
  (counted from the first failure of the window). Each attempt is reserved atomically before
  the slow password hash and given back when it succeeds, so only failures count and
  concurrent guesses cannot overrun the limit; a successful login clears its email's count.
  While limited, even the right password gets 429, so guessing cannot continue.
- Register: `register_per_hour` attempts per client address, every attempt counted.
- Join: `join_per_minute` attempts per client address, every attempt counted.
- Adding a presenter: `presenter_adds_per_hour` per caller, every attempt counted.

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


# KEYS: the email's and the address's failure counters. ARGV: their limits, then the window.
# Counts this attempt against both before its password is checked; returns seconds to wait
# (0 = go ahead). Checking first and counting after the slow hash let 40 concurrent guesses
# for one email all be tried (PITFALLS 20): reserving in one atomic step lets at most the limit through.
_RESERVE = """
local wait = 0
for i = 1, 2 do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
  if count > tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = 1 end
    if ttl > wait then wait = ttl end
  end
end
return wait
"""


async def reserve_login(services: Services, email: str, address: str) -> None:
    """Count this attempt as a failure *before* verifying it; 429 if the email or address is used up.

    A successful login gives its reservation back (`login_succeeded`), so only failures count.
    While 10 guesses for one email are being verified, an 11th attempt is refused even with the
    right password, exactly as it would be once those 10 have failed.
    """
    script = services.redis.register_script(_RESERVE)
    wait = int(
        await script(
            keys=[_email_key(services, email), _address_key(services, address)],
            args=[LOGIN_FAILURES_PER_EMAIL, LOGIN_FAILURES_PER_ADDRESS, LOGIN_WINDOW_S],
        )
    )
    if wait:
        log.info("auth.login_limited", extra={"client": address, "retry_after_s": wait})
        raise rate_limited(wait)


async def login_succeeded(services: Services, email: str, address: str) -> None:
    """Clear the email's failures and give back the address's reservation for this attempt."""
    async with services.redis.pipeline(transaction=False) as pipe:
        pipe.delete(_email_key(services, email))
        pipe.decr(_address_key(services, address))
        await pipe.execute()


async def clear_login_failures(services: Services, email: str) -> None:
    """Forget the email's failed logins (its password was just reset by someone who holds the mailbox)."""
    await services.redis.delete(_email_key(services, email))


async def check_register(services: Services, address: str) -> None:
    await _count(services, "register", address, services.settings.register_per_hour, 3600)


async def check_join(services: Services, address: str) -> None:
    await _count(services, "join", address, services.settings.join_per_minute, 60)


async def check_presenter_add(services: Services, user_id: str) -> None:
    """`POST /meetings/{id}/presenters` per caller: its 404 tells whether an email has an account
    (the SPEC wants that 404), so this bounds how fast one user can probe emails."""
    key = services.key("rl", "presenter-add", "user", user_id)
    wait = await RateLimiter(services.redis).hit(key, services.settings.presenter_adds_per_hour, 3600)
    if wait:
        log.info("presenter_add.limited", extra={"user_id": user_id, "retry_after_s": wait})
        raise rate_limited(wait)


async def _count(services: Services, name: str, address: str, limit: int, window_s: int) -> None:
    wait = await RateLimiter(services.redis).hit(services.key("rl", name, "addr", address), limit, window_s)
    if wait:
        log.info(f"{name}.limited", extra={"client": address, "retry_after_s": wait})
        raise rate_limited(wait)
