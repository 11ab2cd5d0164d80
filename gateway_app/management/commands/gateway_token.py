"""``manage.py gateway_token <username>``: mint, list or revoke a user's API tokens."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gateway_app.auth.tokens import revoke_token_sync
from gateway_app.models import TOKEN_PREFIX, ApiToken, hash_token


def _plain(text):
    return text


class Command(BaseCommand):
    help = (
        "Mint an API token for a user and print it as the last line on stdout "
        "(only its hash is stored). --list and --revoke manage existing tokens."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label for the new token")
        parser.add_argument(
            "--create-user",
            action="store_true",
            help="create the user (active, unusable password) if it does not exist",
        )
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--list", dest="list_tokens", action="store_true", help="list the user's tokens"
        )
        action.add_argument(
            "--revoke", metavar="PREFIX_OR_ID", help="revoke one token by id, prefix or raw value"
        )

    def handle(self, *args, username, name, create_user, list_tokens, revoke, **options):
        user = self._user(username, create=create_user and not (list_tokens or revoke))
        if list_tokens:
            self._list(user)
        elif revoke:
            self._revoke(user, revoke)
        else:
            if not user.is_active:
                self.stderr.write(f"warning: {username} is inactive; the token will not work")
            token, raw = ApiToken.mint(user, name=name)
            self.stderr.write(
                f"API token {token.pk} for {username} (shown once, store it now):",
                style_func=_plain,
            )
            self.stdout.write(raw)

    def _user(self, username, *, create):
        User = get_user_model()
        try:
            return User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            if not create:
                raise CommandError(
                    f"No user named {username!r}; pass --create-user to create one."
                ) from None
        user = User._default_manager.create_user(**{User.USERNAME_FIELD: username})
        self.stderr.write(f"Created user {username} (no password).", style_func=_plain)
        return user

    def _list(self, user):
        for token in ApiToken.objects.filter(user=user).order_by("created_at"):
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked else "active"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.pk}\t{token.prefix}\t{state}\tlast used {used}\t{token.name}".rstrip()
            )

    def _revoke(self, user, key):
        tokens = ApiToken.objects.active().filter(user=user)
        if key.isdigit():
            tokens = tokens.filter(pk=int(key))
        elif (
            key.startswith(TOKEN_PREFIX)
            and len(key) > ApiToken._meta.get_field("prefix").max_length
        ):
            tokens = tokens.filter(key_hash=hash_token(key))
        else:
            tokens = tokens.filter(prefix__startswith=key)
        matches = list(tokens[:2])
        if not matches:
            raise CommandError(f"No active token {key!r} for {user.get_username()}.")
        if len(matches) > 1:
            raise CommandError(f"{key!r} matches several tokens; use the id (see --list).")
        revoke_token_sync(matches[0].pk)
        self.stdout.write(
            f"Revoked token {matches[0].pk} ({matches[0].prefix}); sockets it opened are"
            " closed (at once through a shared Redis layer, otherwise within TOKEN_RECHECK_S)."
        )
