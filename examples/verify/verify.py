# Verify an authd access token in a Python API. pip install "PyJWT[crypto]"
import json
import os
import sys

import jwt

AUTHD_URL = os.environ.get("AUTHD_URL", "http://localhost:8080")
# Fetched once, cached, refetched when a token names an unknown kid (key rotation).
jwks = jwt.PyJWKClient(f"{AUTHD_URL}/.well-known/jwks.json")


def verify_access_token(token: str) -> dict:
    key = jwks.get_signing_key_from_jwt(token)  # a PyJWK: it verifies only its own alg
    verified = jwt.decode_complete(
        token,
        key,
        algorithms=["EdDSA", "ES256", "RS256"],
        issuer=os.environ.get("AUTHD_ISSUER", AUTHD_URL),  # AUTHD_ISSUER of the server
        audience=os.environ.get("AUTHD_AUDIENCE", "authd"),
        options={"require": ["exp", "iat", "sub", "sid"]},
    )
    if verified["header"].get("typ") != "at+jwt":
        raise jwt.InvalidTokenError("not an access token")
    return verified["payload"]  # sub: user id, sid: session id, roles, exp


# python verify.py <token>: prints the claims (exit 1 with the reason if the token is refused).
if __name__ == "__main__":
    try:
        print(json.dumps(verify_access_token(sys.argv[1])))
    except jwt.PyJWTError as err:
        sys.exit(f"refused: {err!r}")
