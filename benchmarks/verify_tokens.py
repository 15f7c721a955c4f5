"""Microseconds per PluginLab token verification (issue 4's benchmark).

    .venv/bin/python benchmarks/verify_tokens.py [--tokens 2000] [--rounds 5]

Starts a sandbox on loopback, mints distinct tokens, and times:

* this project, distinct tokens (each verified once: the full PS256 path);
* this project, one token repeated (the verified-token cache);
* raw ``jwt.decode`` with a pre-loaded key and the same checks (the floor);
* the official ``pluginlab_admin`` SDK's ``verify_token`` against the
  sandbox's cert URL (the vendor baseline: it fetches the JWKS every call).

Targets: distinct ≤ 1.25× the floor; repeated ≤ 10 µs; ≥ 10× faster than
the vendor SDK for distinct tokens. Rounds are interleaved and the median
round is reported, so background noise hits every contender alike.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")


def per_call_us(fn, items) -> float:
    gc.collect()
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000, help="distinct tokens per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vendor-tokens", type=int, default=200)
    args = parser.parse_args()

    import django

    django.setup()

    import jwt
    import requests
    from django.test import override_settings
    from jwt.algorithms import RSAPSSAlgorithm
    from pluginlab_admin.token_verifier import TokenVerifier as VendorVerifier

    from pluginlab_django import tokens
    from pluginlab_django.conf import pluginlab_settings
    from pluginlab_django.testing import Sandbox

    with Sandbox(members=50, seed=1) as sb, override_settings(PLUGINLAB=sb.pluginlab_settings()):
        members = sb.member_ids()
        total = args.tokens * args.rounds
        print(f"Minting {total} distinct tokens...", flush=True)
        batches = [
            [
                sb.mint_token(members[i % len(members)], plan_id="plan_pro", expires_in=3600 + i)
                for i in range(r * args.tokens, (r + 1) * args.tokens)
            ]
            for r in range(args.rounds)
        ]
        audience = pluginlab_settings.token_audience
        issuer = pluginlab_settings.TOKEN_ISSUER
        cert_url = pluginlab_settings.CERT_URL

        # The floor: PyJWT with the key already in hand and the same checks.
        jwks = requests.get(cert_url, timeout=5).json()
        kid = jwt.get_unverified_header(batches[0][0]).get("kid")
        jwk = next((k for k in jwks["keys"] if k.get("kid") == kid), jwks["keys"][0])
        key = RSAPSSAlgorithm.from_jwk(jwk)

        def raw_decode(token: str):
            return jwt.decode(token, key, algorithms=["PS256"], audience=audience, issuer=issuer)

        tokens.reset_verifier()
        verifier = tokens.get_verifier()
        verifier.verify(sb.mint_token(members[0]))  # warm-up: the one JWKS fetch
        fetches_after_warm_up = sb.request_count("/auth/admin/v1/cert")

        floor_rounds, ours_rounds, repeated_rounds = [], [], []
        repeated = [batches[0][0]] * 100_000
        for batch in batches:
            floor_rounds.append(per_call_us(raw_decode, batch))
            verifier.forget_verified()
            ours_rounds.append(per_call_us(tokens.verify_token, batch))
            repeated_rounds.append(per_call_us(tokens.verify_token, repeated))
        assert sb.request_count("/auth/admin/v1/cert") == fetches_after_warm_up, "network used"

        vendor = VendorVerifier(remote_key_url=cert_url, audience=audience)
        vendor_batch = batches[0][: args.vendor_tokens]
        vendor_rounds = [per_call_us(vendor.verify_token, vendor_batch) for _ in range(3)]

    floor = statistics.median(floor_rounds)
    ours = statistics.median(ours_rounds)
    again = statistics.median(repeated_rounds)
    vendor_us = statistics.median(vendor_rounds)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print()
    print(f"{'contender':<46}{'µs/verification':>16}  ratio / target")
    print(
        f"{'this project, distinct tokens':<46}{ours:>16.1f}  "
        f"{ours / floor:.2f}× the floor (target ≤ 1.25×) {verdict(ours <= 1.25 * floor)}"
    )
    print(
        f"{'this project, repeated token':<46}{again:>16.2f}  target ≤ 10 µs {verdict(again <= 10)}"
    )
    print(f"{'raw jwt.decode, pre-loaded key (floor)':<46}{floor:>16.1f}  1.00×")
    print(
        f"{'pluginlab_admin verify_token (vendor)':<46}{vendor_us:>16.1f}  "
        f"ours is {vendor_us / ours:.1f}× faster (target ≥ 10×) {verdict(vendor_us >= 10 * ours)}"
    )
    print()
    print(
        f"rounds (µs): floor {[round(x, 1) for x in floor_rounds]}, "
        f"ours {[round(x, 1) for x in ours_rounds]}, "
        f"repeated {[round(x, 2) for x in repeated_rounds]}, "
        f"vendor {[round(x) for x in vendor_rounds]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
