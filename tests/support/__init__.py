"""Helpers shared by the tests: image builders (``images``) and real servers (``servers``)."""
