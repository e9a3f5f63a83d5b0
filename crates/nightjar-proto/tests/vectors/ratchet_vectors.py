#!/usr/bin/env python3
"""Known-answer vectors for nightjar's Double Ratchet (src/ratchet.rs).

An implementation independent of the Rust code: Python's hmac/hashlib for
HMAC and HKDF (RFC 5869), `cryptography` for X25519 and ChaCha20-Poly1305, and
HChaCha20 written out below to build XChaCha20-Poly1305. Run it and compare
with the constants in src/ratchet/kdf.rs and tests/ratchet.rs.
"""
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

ROOT_INFO = b"nightjar/v1/ratchet/root"
MESSAGE_INFO = b"nightjar/v1/ratchet/message"


def hkdf(salt, ikm, info, length):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


def kdf_rk(rk, dh):
    okm = hkdf(rk, dh, ROOT_INFO, 96)
    return okm[:32], okm[32:64], okm[64:]


def kdf_ck(ck):
    mk = hmac.new(ck, b"\x01", hashlib.sha256).digest()
    nxt = hmac.new(ck, b"\x02", hashlib.sha256).digest()
    return mk, nxt


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = list(struct.unpack("<4I", b"expand 32-byte k"))
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13)
        quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12)
        quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_seal(key, nonce24, pt, aad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce24[16:], pt, aad)


def message_seal(mk, pt, aad):
    okm = hkdf(b"\0" * 32, mk, MESSAGE_INFO, 56)
    return xchacha_seal(okm[:32], okm[32:], pt, aad)


def x25519(secret, public):
    return X25519PrivateKey.from_private_bytes(secret).exchange(
        X25519PrivateKeyPublic(public))


def X25519PrivateKeyPublic(raw):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    return X25519PublicKey.from_public_bytes(raw)


def public(secret):
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def message(hk, header_nonce, ratchet_pub, pn, n, mk, pt, ad):
    header = ratchet_pub + struct.pack(">III", pn, n, len(pt) + 16)
    enc_header = header_nonce + xchacha_seal(hk, header_nonce, header, ad)
    return enc_header + message_seal(mk, pt, ad + enc_header)


def main():
    # Primitive vectors (src/ratchet/kdf.rs).
    rk, ck, nhk = kdf_rk(b"\x11" * 32, b"\x22" * 32)
    print("KAT_RK", rk.hex()); print("KAT_RK_CK", ck.hex()); print("KAT_RK_NHK", nhk.hex())
    mk, nxt = kdf_ck(b"\x33" * 32)
    print("KAT_CK_MK", mk.hex()); print("KAT_CK_NEXT", nxt.hex())
    okm = hkdf(b"\0" * 32, b"\x44" * 32, MESSAGE_INFO, 56)
    print("KAT_MSG_NONCE", okm[32:].hex())
    print("KAT_MSG_CT", xchacha_seal(okm[:32], okm[32:], b"nightjar", b"").hex())

    # A first message and its reply (tests/ratchet.rs). Randomness in order:
    # Alice's ratchet secret, her header nonce; Bob's new ratchet secret, his nonce.
    root, hka, nhkb = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    bob0, alice0, bob1 = b"\x04" * 32, b"\x05" * 32, b"\x07" * 32
    nonce_a, nonce_b = b"\x06" * 24, b"\x08" * 24
    ad = b"nightjar-ad"

    a_rk, a_cks, a_nhks = kdf_rk(root, x25519(alice0, public(bob0)))
    a_mk, _ = kdf_ck(a_cks)
    m1 = message(hka, nonce_a, public(alice0), 0, 0, a_mk, b"hello bob", ad)
    print("KAT_FIRST_MESSAGE", m1.hex())

    b_rk, b_ckr, b_nhkr = kdf_rk(root, x25519(bob0, public(alice0)))
    assert (b_rk, b_ckr, b_nhkr) == (a_rk, a_cks, a_nhks)
    b_rk, b_cks, b_nhks = kdf_rk(b_rk, x25519(bob1, public(alice0)))
    b_mk, _ = kdf_ck(b_cks)
    m2 = message(nhkb, nonce_b, public(bob1), 0, 0, b_mk, b"hello alice", ad)
    print("KAT_REPLY", m2.hex())


if __name__ == "__main__":
    main()
