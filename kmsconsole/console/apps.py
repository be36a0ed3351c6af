from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "kmsconsole.console"
    label = "console"
    verbose_name = "Web console"

    def ready(self) -> None:
        # The sign-in stamps (kms_signed_in_at, kms_last_seen_at) are set by a user_logged_in receiver in
        # session.py. Importing it here connects the receiver at start-up: left to the middleware import, a
        # login before the first request (the test client's force_login, a management command) went
        # unstamped and the next request signed the user out.
        from kmsconsole.console import session  # noqa: F401
