from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Message routing"

    def ready(self) -> None:
        from projects.credentials import credentials
        from projects.models import ApiKey, Project
        from routing.events import credentials_changed
        from routing.hub import CREDENTIALS_EVENT, hub

        # Other processes' changes to keys and projects, heard through the hub (projects.credentials).
        hub.on_process_event(CREDENTIALS_EVENT, credentials.forget_all)
        for model in (ApiKey, Project):
            post_save.connect(credentials_changed, sender=model, dispatch_uid=f"broker_publish_{model.__name__}_saved")
            post_delete.connect(credentials_changed, sender=model,
                                dispatch_uid=f"broker_publish_{model.__name__}_deleted")
