"""Verifies webhook messages the server sent with the `standardwebhooks` package (PyPI),
an implementation of the Standard Webhooks spec independent of ours.

Reads one JSON document on standard input:
  {"messages": [{"headers": {...}, "body": "<exact body>", "secrets": ["whsec_…", …],
                 "not_secrets": ["whsec_…", …]}]}
Each message must verify under every secret of `secrets` (e.g. the new and the previous
one during a rotation) and under none of `not_secrets`; a tampered body must not verify.
Prints "ok N" and exits 0, or names the failure and exits 1.
Used by tests/api/webhooks.rs (`.ci/run` installs the package).
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def fails(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return True
    return False


def main():
    case = json.load(sys.stdin)
    checked = 0
    for i, m in enumerate(case["messages"]):
        body = m["body"].encode("utf-8")
        for secret in m["secrets"]:
            parsed = Webhook(secret).verify(body, m["headers"])
            if "type" not in parsed or "data" not in parsed:
                print(f"message {i}: not a {{type, data}} payload: {parsed}")
                return 1
            if not fails(secret, body + b" ", m["headers"]):
                print(f"message {i}: a tampered body verified")
                return 1
            checked += 1
        for secret in m.get("not_secrets", []):
            if not fails(secret, body, m["headers"]):
                print(f"message {i}: verified under a secret that did not sign it")
                return 1
    print(f"ok {checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
