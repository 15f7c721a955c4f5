"""Microseconds per PluginLab token verification (issue 4's benchmark).

    .venv/bin/python benchmarks/verify_tokens.py [--tokens 2000] [--rounds 5]

Starts a sandbox on loopback, mints distinct tokens, and times:

* this project, distinct tokens (each verified once: the full PS256 path);
* this project, one token repeated (the verified-token cache);
* raw ``jwt.decode`` with a pre-loaded key and the same checks (the floor);
* the official ``pluginlab_admin`` SDK's ``verify_token`` against the
  sandbox's cert URL (the vendor baseline: it fetches the JWKS every call);
* the whole DRF ``PluginLabTokenAuthentication.authenticate()`` for tokens of
  distinct mirrored members, each carrying a plan not yet recorded (issue
  10): header parsing, verification, the user, and plan recording — which
  must not cost a query on the request's path. The plans are flushed after
  each request (outside the timing, as ``request_finished`` does after the
  response) and checked to have landed.

Targets: distinct ≤ 1.25× the floor; repeated ≤ 10 µs; ≥ 10× faster than
the vendor SDK for distinct tokens; authenticate() ≤ 1.1× the floor.
Rounds are interleaved and the median round is reported, so background
noise hits every contender alike.
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


#: Requests timed for the "plan written inside the request" contender.
INLINE_SAMPLE = 200


def per_call_us(fn, items) -> float:
    gc.collect()
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def paired_us(floor, authenticate, pairs, after_response) -> tuple[float, float]:
    """µs per ``floor(token)`` and per ``authenticate(request)``, timed token
    by token in alternating order so load on the machine hits both alike;
    ``after_response`` (what Django's ``request_finished`` runs once the
    response is sent) runs between requests, outside the timing."""
    gc.collect()
    spent_floor = spent_auth = 0.0
    clock = time.perf_counter
    for i, (token, request) in enumerate(pairs):
        if i % 2:
            t0 = clock()
            floor(token)
            t1 = clock()
            authenticate(request)
            t2 = clock()
            spent_floor, spent_auth = spent_floor + t1 - t0, spent_auth + t2 - t1
        else:
            t0 = clock()
            authenticate(request)
            t1 = clock()
            floor(token)
            t2 = clock()
            spent_auth, spent_floor = spent_auth + t1 - t0, spent_floor + t2 - t1
        after_response()
    return spent_floor / len(pairs) * 1e6, spent_auth / len(pairs) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000, help="distinct tokens per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vendor-tokens", type=int, default=200)
    parser.add_argument(
        "--members", type=int, default=2000, help="distinct members for authenticate()"
    )
    args = parser.parse_args()

    import django

    django.setup()

    import jwt
    import requests
    from django.core.management import call_command
    from django.test import RequestFactory, override_settings
    from jwt.algorithms import RSAPSSAlgorithm
    from pluginlab_admin.token_verifier import TokenVerifier as VendorVerifier

    from pluginlab_django import tokens
    from pluginlab_django.authentication import PluginLabTokenAuthentication
    from pluginlab_django.conf import pluginlab_settings
    from pluginlab_django.models import Member
    from pluginlab_django.services import plans
    from pluginlab_django.testing import Sandbox

    call_command("migrate", verbosity=0)
    settings = {"members": max(50, args.members), "seed": 1}
    with Sandbox(**settings) as sb, override_settings(PLUGINLAB=sb.pluginlab_settings()):
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

        # authenticate() for distinct members, each with a plan not recorded yet.
        Member.objects.all().delete()
        everyone = sb.member_ids()[: args.members]
        Member.objects.bulk_create(
            [Member(remote_id=mid, email=f"{mid}@example.com") for mid in everyone]
        )
        factory = RequestFactory()
        authentication = PluginLabTokenAuthentication()
        flush = plans.flush_recorded_plans

        def authenticate_then_write(request):
            """The old shape: the plan written before the response."""
            result = authentication.authenticate(request)
            flush()
            return result

        def verify_only(request):
            """The same token through verify_token alone (no DRF, no plan)."""
            return tokens.verify_token(request.META["HTTP_AUTHORIZATION"][7:])

        contenders = {
            "authenticate": authentication.authenticate,
            "verify_only": verify_only,
            "inline": authenticate_then_write,
        }
        paired: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        landed = []
        for r in range(args.rounds):
            for name, contender in contenders.items():
                plan = f"plan_round_{r}_{name}"
                round_tokens = [sb.mint_token(mid, plan_id=plan) for mid in everyone]
                requests_ = [
                    factory.get("/", HTTP_AUTHORIZATION=f"Bearer {token}") for token in round_tokens
                ]
                verifier.forget_verified()
                plans.forget_recorded_plans()
                pairs = list(zip(round_tokens, requests_, strict=True))
                if name == "inline":  # a write per request is slow: a sample will do
                    pairs = pairs[:INLINE_SAMPLE]
                paired[name].append(paired_us(raw_decode, contender, pairs, flush))
                if name == "authenticate":
                    landed.append(Member.objects.filter(plan_id=plan).count())

        vendor = VendorVerifier(remote_key_url=cert_url, audience=audience)
        vendor_batch = batches[0][: args.vendor_tokens]
        vendor_rounds = [per_call_us(vendor.verify_token, vendor_batch) for _ in range(3)]

    floor = statistics.median(floor_rounds)
    ours = statistics.median(ours_rounds)
    again = statistics.median(repeated_rounds)
    vendor_us = statistics.median(vendor_rounds)

    def ratios(name: str) -> list[float]:
        return [spent / floor_us for floor_us, spent in paired[name]]

    auth_ratios = ratios("authenticate")
    auth_ratio = statistics.median(auth_ratios)
    auth_us = statistics.median(spent for _f, spent in paired["authenticate"])
    inline_us = statistics.median(spent for _f, spent in paired["inline"])

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
    print(
        f"{'DRF authenticate(), distinct members + plan':<46}{auth_us:>16.1f}  "
        f"{auth_ratio:.2f}× the floor (target ≤ 1.1×) {verdict(auth_ratio <= 1.1)}"
    )
    print(
        f"{'  verify_token alone, same conditions':<46}"
        f"{statistics.median(spent for _f, spent in paired['verify_only']):>16.1f}  "
        f"{statistics.median(ratios('verify_only')):.2f}× the floor"
    )
    print(
        f"{'  plan written inside the request (before)':<46}"
        f"{inline_us:>16.1f}  {statistics.median(ratios('inline')):.2f}× the floor"
    )
    print(
        f"plans landed after the flush: {landed} of {len(everyone)} per round "
        f"{verdict(all(n == len(everyone) for n in landed))}"
    )
    print()
    print(
        "paired rounds (floor µs, contender µs): "
        + "; ".join(
            f"{name} {[(round(f, 1), round(c, 1)) for f, c in rounds]}"
            for name, rounds in paired.items()
        )
    )
    print(
        f"rounds (µs): floor {[round(x, 1) for x in floor_rounds]}, "
        f"ours {[round(x, 1) for x in ours_rounds]}, "
        f"repeated {[round(x, 2) for x in repeated_rounds]}, "
        f"vendor {[round(x) for x in vendor_rounds]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
