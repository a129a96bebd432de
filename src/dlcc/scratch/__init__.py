"""Part 1 of the course: neural networks from scratch in numpy (never imports torch)."""

from . import data

__all__ = ["data"]
