"""Format plugins. Built-ins live here and register through the ``annonorm.converters`` entry points."""

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record

__all__ = ["Capabilities", "Converter", "Option", "ReadContext", "ReadResult", "make_record"]
