"""Settings for importing one module into a fresh interpreter (tests/site/test_layers.py): the test
settings, with the admin that does not import every app's admin module at start-up."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = ["django.contrib.admin.apps.SimpleAdminConfig" if app == "django.contrib.admin" else app
                  for app in INSTALLED_APPS]
