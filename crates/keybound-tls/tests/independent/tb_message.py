#!/usr/bin/env python3
"""An independent Token Binding client message (RFC 8471), built with pyca/cryptography and
struct only -- none of keybound's code. Given a connection's EKM (hex) and key parameters
(ecdsap256 | rsa2048_pss | rsa2048_pkcs1.5), prints two lines: the Sec-Token-Binding header
value for one provided binding, and the tbh of its Token Binding ID."""
import base64
import hashlib
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

PARAMS = {"rsa2048_pkcs1.5": 0, "rsa2048_pss": 1, "ecdsap256": 2}


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unsigned(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")  # no leading zero bytes


def main():
    ekm = bytes.fromhex(sys.argv[1])
    name = sys.argv[2]
    param = PARAMS[name]
    signed = bytes([0, param]) + ekm  # provided_token_binding, key parameters, EKM
    if name == "ecdsap256":
        key = ec.generate_private_key(ec.SECP256R1())
        nums = key.public_key().public_numbers()
        point = nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")
        public = struct.pack("!B", len(point)) + point
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = key.public_key().public_numbers()
        n, e = unsigned(nums.n), unsigned(nums.e)
        public = struct.pack("!H", len(n)) + n + struct.pack("!B", len(e)) + e
        if name == "rsa2048_pss":
            pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        else:
            pad = padding.PKCS1v15()
        sig = key.sign(signed, pad, hashes.SHA256())
    tb_id = struct.pack("!BH", param, len(public)) + public
    binding = struct.pack("!B", 0) + tb_id + struct.pack("!H", len(sig)) + sig + struct.pack("!H", 0)
    message = struct.pack("!H", len(binding)) + binding
    print(b64url(message))
    print(b64url(hashlib.sha256(tb_id).digest()))


if __name__ == "__main__":
    main()
