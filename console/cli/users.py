"""``steward users add | list | set-roles | set-password | disable | enable``.

Commands act as the user named by ``--as`` (default: the ``STEWARD_USER`` variable), so the CLI
obeys the same role checks as the console.
``users add`` without an acting user is the bootstrap path: it creates the first account of an
empty installation, which must hold the admin role.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from typing import Any

from agent.auth import generate_password
from agent.users import (
    UserInfo,
    add_first_user,
    add_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
    set_roles,
)
from console.cli.common import (
    CommandError,
    acting_name,
    acting_user,
    add_actor_argument,
    add_paging,
    open_platform,
    print_json,
    print_page,
)
from storage.types import utcnow


def register(commands: Any) -> None:
    parser = commands.add_parser("users", help="people, their roles and passwords")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add", help="add a user (the first user of an empty database needs no --as)"
    )
    add.add_argument("name")
    _role_argument(add)
    add.add_argument("--email", default=None)
    add.add_argument("--display-name", default="")
    _password_arguments(add)
    add_actor_argument(add)
    add.add_argument("--json", action="store_true", help="machine-readable output")
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list users by name (admins and managers)")
    add_actor_argument(listing)
    add_paging(listing, "users")
    listing.set_defaults(handler=_list)

    roles = actions.add_parser("set-roles", help="replace a user's roles")
    roles.add_argument("name")
    _role_argument(roles)
    add_actor_argument(roles)
    roles.add_argument("--json", action="store_true", help="machine-readable output")
    roles.set_defaults(handler=_set_roles)

    password = actions.add_parser("set-password", help="set a user's password")
    password.add_argument("name")
    _password_arguments(password)
    add_actor_argument(password)
    password.set_defaults(handler=_set_password)

    for verb, handler in (("disable", _disable), ("enable", _enable)):
        sub = actions.add_parser(
            verb,
            help="stop a user from signing in"
            if verb == "disable"
            else "let a disabled or locked-out user sign in again",
        )
        sub.add_argument("name")
        add_actor_argument(sub)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        sub.set_defaults(handler=handler)


def _role_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        metavar="ROLE",
        help="operator, manager, engineer or admin; repeat it or give a comma list",
    )


def _password_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    source.add_argument(
        "--password-env", metavar="VAR", help="read the password from environment variable VAR"
    )


def _roles(args: argparse.Namespace) -> list[str]:
    return [role.strip() for value in args.roles for role in value.split(",") if role.strip()]


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password to set, and whether it was generated (and must be shown once)."""
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise CommandError("--password-stdin: standard input held no password.")
        return password, False
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise CommandError(f"--password-env: the variable {args.password_env} is not set.")
        return password, False
    return generate_password(), True


def _add(args: argparse.Namespace) -> int:
    password, generated = _password(args)
    platform = open_platform()
    if acting_name(args) is None:
        user = add_first_user(
            platform,
            args.name,
            _roles(args),
            password=password,
            email=args.email,
            display_name=args.display_name,
        )
    else:
        user = add_user(
            platform,
            acting_user(args, platform),
            args.name,
            _roles(args),
            password=password,
            email=args.email,
            display_name=args.display_name,
        )
    if args.json:
        print_json({**_user_json(user), **({"password": password} if generated else {})})
        return 0
    print(f"added {user.name} ({', '.join(user.roles)}).")
    if generated:
        print(f"password for {user.name} (shown only this once): {password}")
    return 0


def _list(args: argparse.Namespace) -> int:
    platform = open_platform()
    users = list_users(platform, acting_user(args, platform), offset=args.offset, limit=args.limit)
    now = utcnow()

    def line(user: UserInfo) -> str:
        locked = user.locked_until is not None and user.locked_until > now
        state = "disabled" if user.disabled else ("locked" if locked else "active")
        email = f" <{user.email}>" if user.email else ""
        return f"{user.name}{email}  {', '.join(user.roles)}  {state}"

    print_page(users, args, line, empty="no users yet: steward users add NAME --role admin")
    return 0


def _set_roles(args: argparse.Namespace) -> int:
    platform = open_platform()
    user = set_roles(platform, acting_user(args, platform), args.name, _roles(args))
    return _show(args, user, f"{user.name} now holds {', '.join(user.roles)}.")


def _set_password(args: argparse.Namespace) -> int:
    password, generated = _password(args)
    platform = open_platform()
    set_password(platform, acting_user(args, platform), args.name, password)
    print(f"password of {args.name} changed.")
    if generated:
        print(f"new password for {args.name} (shown only this once): {password}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    platform = open_platform()
    user = disable_user(platform, acting_user(args, platform), args.name)
    return _show(args, user, f"{user.name} is disabled.")


def _enable(args: argparse.Namespace) -> int:
    platform = open_platform()
    user = enable_user(platform, acting_user(args, platform), args.name)
    return _show(args, user, f"{user.name} is enabled.")


def _show(args: argparse.Namespace, user: UserInfo, message: str) -> int:
    if args.json:
        print_json(_user_json(user))
    else:
        print(message)
    return 0


def _user_json(user: UserInfo) -> dict[str, Any]:
    return asdict(user)
