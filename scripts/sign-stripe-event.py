#!/usr/bin/env python3
"""Re-signs the Stripe webhook sample event so the stripe-webhook function accepts it.

Stripe signs `<timestamp>.<raw body>` with HMAC-SHA256 keyed by the endpoint secret (the whole
`whsec_...` string) and sends `Stripe-Signature: t=<timestamp>,v1=<hex>`. The function rejects a
timestamp older than STRIPE_WEBHOOK_TOLERANCE (300 s by default), so the committed sample, signed
at a fixed time, needs a fresh signature before it is invoked:

    STRIPE_WEBHOOK_SECRET=whsec_local_placeholder \
        python3 scripts/sign-stripe-event.py > /tmp/stripe-webhook.json
    cargo lambda invoke stripe-webhook --data-file /tmp/stripe-webhook.json

The secret is the first of STRIPE_WEBHOOK_SECRET (a comma-separated list, as the function reads
it), else --secret, else the local placeholder. Standard library only.
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import time

PLACEHOLDER_SECRET = "whsec_local_placeholder"


def sign(body: str, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--event", default=os.path.join(root, "events", "stripe-webhook.json"),
                        help="API Gateway HTTP API event whose body to sign (default: the sample)")
    parser.add_argument("--secret", help="endpoint secret (default: $STRIPE_WEBHOOK_SECRET or the placeholder)")
    parser.add_argument("--timestamp", type=int, help="signature time, epoch seconds (default: now)")
    parser.add_argument("--in-place", action="store_true", help="rewrite the event file instead of printing")
    args = parser.parse_args()

    env_secrets = [s.strip() for s in os.environ.get("STRIPE_WEBHOOK_SECRET", "").split(",") if s.strip()]
    secret = args.secret or (env_secrets[0] if env_secrets else PLACEHOLDER_SECRET)
    timestamp = args.timestamp if args.timestamp is not None else int(time.time())

    with open(args.event, encoding="utf-8") as f:
        event = json.load(f)
    body = event.get("body")
    if not isinstance(body, str) or event.get("isBase64Encoded"):
        print("the event has no plain-text body to sign", file=sys.stderr)
        return 1
    event["headers"]["stripe-signature"] = sign(body, secret, timestamp)
    event["headers"]["content-length"] = str(len(body.encode("utf-8")))

    text = json.dumps(event, indent=2, ensure_ascii=False) + "\n"
    if args.in_place:
        with open(args.event, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
