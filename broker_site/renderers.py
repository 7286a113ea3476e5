"""REST's JSON renderer (REST_FRAMEWORK's DEFAULT_RENDERER_CLASSES), writing through broker_site.jsoncodec."""

from rest_framework.renderers import JSONRenderer
from rest_framework.utils import encoders

from broker_site.jsoncodec import json_bytes

_DRF_ENCODER = encoders.JSONEncoder()


class FastJSONRenderer(JSONRenderer):
    """DRF's JSON renderer writing through `json_bytes`, with DRF's own encoder for what JSON has no type for
    (datetimes, decimals); an indented answer (asked for in the Accept header) is DRF's."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None or self.get_indent(accepted_media_type, renderer_context or {}):
            return super().render(data, accepted_media_type, renderer_context)
        return json_bytes(data, default=_DRF_ENCODER.default)
