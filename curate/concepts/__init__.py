"""Concept sources: named detectors and SAE features."""

from .named import BUILTIN_CONCEPTS, Concept, NamedConcepts, annotate, list_concepts, register_concept

__all__ = ["BUILTIN_CONCEPTS", "Concept", "NamedConcepts", "annotate", "list_concepts", "register_concept"]
