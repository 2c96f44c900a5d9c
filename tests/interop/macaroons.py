"""L402 macaroons through pymacaroons, an implementation independent of ours.

Used by tests/it/macaroon_interop.rs. Two subcommands:

  mint SECRET_HEX IDENTIFIER_HEX [CAVEAT ...]
      Mints a V2 macaroon, location "lsat", with the binary identifier,
      the per-token secret as pymacaroons' root key (so through the
      "macaroons-key-generator" derivation, as Go's macaroon.New does), and
      the first-party caveats in order. Prints the standard, padded base64
      of the V2 binary encoding.

  verify SECRET_HEX TOKEN_BASE64
      Deserializes the token with pymacaroons' own base64 handling and
      checks its HMAC chain with pymacaroons' Verifier under the secret
      (every first-party caveat is accepted: the caveat rules are the
      Rust side's). Prints, one per line:
          version <1|2>
          location <location>
          identifier <hex>
          caveat <predicate>      (one line per caveat, in order)
          verified
      Exits 1 with a message on stderr when verification fails.
"""

import base64
import sys

from pymacaroons import Macaroon, Verifier
from pymacaroons.macaroon import MACAROON_V2
from pymacaroons.serializers.binary_serializer import BinarySerializer


def mint(secret_hex, identifier_hex, caveats):
    m = Macaroon(
        location="lsat",
        identifier=bytes.fromhex(identifier_hex),
        key=bytes.fromhex(secret_hex),
        version=MACAROON_V2,
    )
    for c in caveats:
        m.add_first_party_caveat(c)
    raw = BinarySerializer().serialize_raw(m)
    print(base64.standard_b64encode(raw).decode("ascii"))


def verify(secret_hex, token):
    m = Macaroon.deserialize(token)
    v = Verifier()
    v.satisfy_general(lambda predicate: True)
    try:
        v.verify(m, bytes.fromhex(secret_hex))
    except Exception as e:  # pymacaroons raises several exception types
        print(f"verification failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"version {m.version}")
    print(f"location {m.location}")
    print(f"identifier {m.identifier_bytes.hex()}")
    for c in m.caveats:
        if c.third_party():
            print("verification failed: unexpected third-party caveat", file=sys.stderr)
            sys.exit(1)
        print(f"caveat {c.caveat_id_bytes.decode('utf-8')}")
    print("verified")


def main(argv):
    if len(argv) >= 3 and argv[0] == "mint":
        mint(argv[1], argv[2], argv[3:])
    elif len(argv) == 3 and argv[0] == "verify":
        verify(argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
