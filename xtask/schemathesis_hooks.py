"""Schemathesis hooks for `cargo xtask schemathesis` (loaded through schemathesis.toml).

Each generated request is a new request: a valid `Idempotency-Key` the generator sends
is replaced by a fresh one, so that two different generated bodies never share a key.
(The same key with a different body is 422 `IDEMPOTENCY_KEY_REUSED` by design; replays
and reuse are tested in apps/server/tests/api/idempotency.rs.) Invalid keys are sent
as generated, so refusing them stays fuzzed.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        value = headers[name]
        if isinstance(value, str) and len(value) <= 255 and VALID_KEY.match(value):
            headers[name] = str(uuid.uuid4())
