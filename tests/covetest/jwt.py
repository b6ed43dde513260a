"""HS256 JWTs with the claims the tests' identity provider issues (`sub`, `email`, `email_verified`
(true: invitations require a verified address), `name`, `iat`, `exp`), for a `cove` started with
`SPIN_VARIABLE_JWT_HS256_SECRET` set to the same secret."""

import os
import time

import jwt as pyjwt


def new_secret(prefix):
    """A fresh random secret for one test session."""
    return prefix + os.urandom(24).hex()


def mint_jwt(secret, sub, email=None, name=None, ttl=600, email_verified=True):
    """A token for `sub` valid for `ttl` seconds (negative: already expired)."""
    now = int(time.time())
    claims = {"sub": sub, "email": email or f"{sub}@example.com", "email_verified": email_verified,
              "name": name or sub, "iat": now, "exp": now + ttl}
    return pyjwt.encode(claims, secret, algorithm="HS256")
