"""Serializer fields shared by the apps' serializers."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text.

    API.md: wrong types are a 400. DRF's CharField would store `5` as "5".
    """

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A BooleanField that takes only JSON true/false, not 0, 1 or "yes"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field({"type": "array", "items": {}, "nullable": True})
class JSONArrayField(serializers.JSONField):
    """A JSON array (or null); anything else is a 400."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if data is not None and not isinstance(data, list):
            raise serializers.ValidationError("Must be a JSON array or null.")
        return data
