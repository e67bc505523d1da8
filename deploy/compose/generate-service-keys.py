"""Prints a new service key for every Tend service, the shared list of their public keys, and audit's log-signing
key, as .env lines.

Run it where tend_common is installed, for example in the image (built with plain `docker build`, since compose
refuses to run while .env lacks these values) or in the development virtual environment:

    docker build -f deploy/Dockerfile -t tend:dev .
    docker run --rm -i --entrypoint python tend:dev - < deploy/compose/generate-service-keys.py
    .venv/bin/python deploy/compose/generate-service-keys.py

and put the lines in place of the empty ones in deploy/compose/.env. On Kubernetes the same names are the keys of the
Secrets (TEND_<NAME>_SERVICE_KEY in tend-<name>) and of the ConfigMap (TEND_SERVICE_PUBLIC_KEYS). The private keys
are secrets; the public-key list is not. See docs/deploy.md, "Service keys".
"""

from __future__ import annotations

from tend_common.service_auth import generate_service_key, public_key_text

SERVICES = ("identity", "checkin", "indicators", "notify", "audit", "portal")


def env_lines() -> list[str]:
    keys = {service: generate_service_key() for service in SERVICES}
    lines = [f"TEND_{service.upper()}_SERVICE_KEY={key}" for service, key in keys.items()]
    public = ",".join(f"{service}={public_key_text(key)}" for service, key in keys.items())
    # Audit's log-signing key is a separate key from its service key: rotating one must not touch the other.
    return [*lines, f"TEND_SERVICE_PUBLIC_KEYS={public}", f"TEND_AUDIT_SIGNING_KEY={generate_service_key()}"]


if __name__ == "__main__":
    print("\n".join(env_lines()))
