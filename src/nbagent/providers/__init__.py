"""Model providers: the boundary between the loop and a model API."""

from .base import Provider

__all__ = ["Provider"]
