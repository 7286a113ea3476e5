from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects and keys"

    def ready(self) -> None:
        from projects import openapi  # noqa: F401  (registers the OpenAPI auth scheme)
