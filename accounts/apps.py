from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Registration, tokens, the caller's account and deleting it with its data."""

    name = "accounts"
