from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Message routing"

    def ready(self) -> None:
        from broker_site.lifespan import background_starters
        from routing.sweeper import ensure_sweeper_running

        background_starters.append(ensure_sweeper_running)
