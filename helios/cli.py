"""The ``helios`` command: manage the daemon's API keys and mint JWTs.

Anything meant for scripts (a new key, a token) is printed alone on the last
line of stdout, so ``helios keys create ... | tail -n 1`` captures it. Errors are
one line on stderr and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import Sequence
from uuid import UUID, uuid4

from helios import __version__
from helios.api.auth import ENV_JWT_SECRET, KNOWN_SCOPES, validate_scopes
from helios.api.keystore import KeyStore
from helios.errors import HeliosError
from helios.sync.auth import DEFAULT_SCOPES, JwtManager

__all__ = ["main"]

EXIT_ERROR, EXIT_USAGE = 1, 2


class UsageError(Exception):
    """Bad invocation: exit status 2, like argparse's own errors."""


def _scopes(text: str) -> list[str]:
    return validate_scopes([s.strip() for s in text.split(",") if s.strip()])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _keys_create(args: argparse.Namespace) -> int:
    store = KeyStore(args.data)
    scopes = _scopes(args.scopes)
    key = store.create(args.name, scopes, user_id=args.user, tenant_id=args.tenant,
                       client_id=args.client, description=args.description)
    print(f"Created API key '{args.name}' (scopes: {', '.join(scopes)}) in {store.path}.")
    print("Copy it now: it is shown only this once; the server keeps only a salted hash.")
    print("Send it in the X-API-Key header.")
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    keys = KeyStore(args.data).list()
    if not keys:
        print(f"No API keys in {args.data}.")
        return 0
    rows = [("NAME", "SCOPES", "USER", "TENANT", "CREATED", "DESCRIPTION")]
    rows += [(k["name"], ",".join(k["scopes"]), k["user_id"], k["tenant_id"],
              _iso(k["created_at"]), k["description"] or "") for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    KeyStore(args.data).revoke(args.name)
    print(f"Revoked API key '{args.name}'; running servers refuse it within a second.")
    return 0


def _token(args: argparse.Namespace) -> int:
    secret = os.environ.get(ENV_JWT_SECRET, "")
    if not secret.strip():
        raise UsageError(f"set {ENV_JWT_SECRET} to the server's JWT signing secret "
                         f"to issue tokens")
    if args.ttl <= 0:
        raise UsageError("--ttl must be a positive number of seconds")
    try:
        client = UUID(args.client) if args.client else uuid4()
    except ValueError:
        raise UsageError(f"--client must be a UUID, got {args.client!r}") from None
    print(JwtManager(secret).generate_token(args.user, args.tenant, client,
                                            _scopes(args.scopes), ttl=args.ttl))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helios", description="HeliosDB Nano key and token tool.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = commands.add_parser("keys", help="manage the API keys of a data directory")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    scope_help = f"comma-separated, from: {', '.join(KNOWN_SCOPES)}"

    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--data", required=True, help="the server's data directory")
    create.add_argument("--name", required=True, help="a unique name for the key")
    create.add_argument("--scopes", required=True, help=scope_help)
    create.add_argument("--user", help="user id recorded as author (default: the key name)")
    create.add_argument("--tenant", default="default", help="tenant id (default: default)")
    create.add_argument("--client", help="client UUID (default: a new random one)")
    create.add_argument("--description")
    create.set_defaults(run=_keys_create)

    listing = key_commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--data", required=True, help="the server's data directory")
    listing.set_defaults(run=_keys_list)

    revoke = key_commands.add_parser("revoke", help="delete a key")
    revoke.add_argument("--data", required=True, help="the server's data directory")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(run=_keys_revoke)

    token = commands.add_parser("token", help=f"print a JWT signed with ${ENV_JWT_SECRET}")
    token.add_argument("--user", required=True, help="user id (the sub claim)")
    token.add_argument("--tenant", required=True, help="tenant id")
    token.add_argument("--client", help="client UUID (default: a new random one)")
    token.add_argument("--scopes", default=",".join(DEFAULT_SCOPES), help=scope_help)
    token.add_argument("--ttl", type=float, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(run=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"helios: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HeliosError as exc:
        print(f"helios: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"helios: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, not a traceback, for the operator
        print(f"helios: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
