"""The built-in issuer's RS256 signing keys, kept in its work directory.

``<workdir>/keys/<kid>.pem`` (PKCS #8, readable by the owner only) and ``active`` naming
the key that signs. Every key in the directory is published in the key set, so tokens
signed before a rotation stay valid until they expire.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"
KEY_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JSON Web Key (RFC 7517) with ``kid``, ``use`` and ``alg``."""
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())


class KeyStore:
    """Loads the keys of ``directory``, making the first one if there is none."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.keys: dict[str, SigningKey] = {}
        for path in sorted(directory.glob("*.pem")):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(key, rsa.RSAPrivateKey):
                self.keys[path.stem] = SigningKey(path.stem, key)
        active = directory / "active"
        if active.exists() and active.read_text().strip() in self.keys:
            self.active = self.keys[active.read_text().strip()]
        else:
            self.active = self.rotate()

    def rotate(self) -> SigningKey:
        """Make a new key and sign with it from now on; the old ones stay published."""
        kid = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        key = SigningKey(kid, rsa.generate_private_key(public_exponent=65537,
                                                       key_size=KEY_BITS))
        path = self.directory / f"{kid}.pem"
        path.touch(mode=0o600)
        path.write_bytes(key.pem())
        (self.directory / "active").write_text(kid)
        self.keys[kid] = key
        self.active = key
        return key

    def jwks(self) -> dict[str, Any]:
        """The key set (RFC 7517 section 5), newest first."""
        return {"keys": [k.public_jwk() for k in sorted(self.keys.values(),
                                                       key=lambda k: k.kid, reverse=True)]}
