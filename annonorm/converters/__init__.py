"""Format plugins. Built-ins live here and register through the ``annonorm.converters`` entry points."""

from annonorm.converters.base import Converter, Option, ReadResult, make_record

__all__ = ["Converter", "Option", "ReadResult", "make_record"]
