#!/usr/bin/env python3
"""Known-answer vectors for nightjar's offline delivery (src/offline.rs).

Independent of the Rust code: HMAC and HKDF from Python's hmac/hashlib, and
XChaCha20-Poly1305 from ratchet_vectors.py (HChaCha20 written out, then
`cryptography`'s ChaCha20-Poly1305). Run it from this directory and compare
with the constants in the tests of src/offline.rs.
"""
import hashlib
import hmac
import struct

from ratchet_vectors import hkdf, xchacha_seal

ID_INFO = b"nightjar/v1/drop/id"
CHAIN_INFO = b"nightjar/v1/drop/chain"
BLOB_INFO = b"nightjar/v1/drop/blob"
AAD_PREFIX = b"nightjar/v1/drop"
NO_SALT = b"\0" * 32
PART_CAPACITY = 476


def step(ck):
    mac = lambda b: hmac.new(ck, bytes([b]), hashlib.sha256).digest()
    return mac(1), mac(3), mac(2)  # message key, slot seed, next chain key


def blob(mk, grant_id, counter, part, parts, data):
    okm = hkdf(NO_SALT, mk, BLOB_INFO + struct.pack(">H", part), 56)
    plaintext = struct.pack(">HHH", part, parts, len(data)) + data
    plaintext += b"\0" * (482 - len(plaintext))
    aad = AAD_PREFIX + grant_id + struct.pack(">I", counter)
    return xchacha_seal(okm[:32], okm[32:], plaintext, aad)


def main():
    seed = bytes(range(32))
    grant_id = hkdf(NO_SALT, seed, ID_INFO, 16)
    ck = hkdf(NO_SALT, seed, CHAIN_INFO, 32)
    print("KAT_GRANT_ID", grant_id.hex())
    print("KAT_CHAIN_KEY_0", ck.hex())
    mk0, slot0, ck = step(ck)
    mk1, slot1, ck = step(ck)
    print("KAT_SLOT_SEED_0", slot0.hex())
    print("KAT_SLOT_SEED_1", slot1.hex())
    b = blob(mk0, grant_id, 0, 0, 1, b"nightjar offline")
    assert len(b) == 498
    print("KAT_BLOB_0_SHA256", hashlib.sha256(b).hexdigest())
    # Counter 1, a payload of two parts: the second part's blob.
    payload = bytes(i % 251 for i in range(PART_CAPACITY + 10))
    b = blob(mk1, grant_id, 1, 1, 2, payload[PART_CAPACITY:])
    print("KAT_BLOB_1_PART_1_SHA256", hashlib.sha256(b).hexdigest())


if __name__ == "__main__":
    main()
