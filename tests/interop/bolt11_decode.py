"""Decode a BOLT11 invoice with the Python `bolt11` package (an independent
implementation) and print what it says as JSON.

Usage: bolt11_decode.py <bolt11>

Prints {amount_msat, payment_hash, currency, network, expiry, description,
timestamp, payee, payment_secret, min_final_cltv_expiry}. Decoding checks the
signature; a bad invoice exits non-zero with the reason on stderr.
"""

import json
import sys

import bolt11

NETWORKS = {"bc": "mainnet", "tb": "testnet", "tbs": "signet", "bcrt": "regtest"}


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: bolt11_decode.py <bolt11>", file=sys.stderr)
        return 2
    inv = bolt11.decode(sys.argv[1])
    out = {
        "amount_msat": int(inv.amount_msat) if inv.amount_msat is not None else None,
        "payment_hash": inv.payment_hash,
        "currency": inv.currency,
        "network": NETWORKS.get(inv.currency, inv.currency),
        "expiry": inv.expiry,
        "description": inv.description,
        "timestamp": inv.date,
        "payee": inv.payee,
        "payment_secret": inv.payment_secret,
        "min_final_cltv_expiry": inv.min_final_cltv_expiry,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
