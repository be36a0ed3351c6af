from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "kmsconsole.console"
    label = "console"
    verbose_name = "Web console"
