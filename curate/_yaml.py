"""YAML that may come from anyone: a recipe file, or a published folder's ``audit/recipe.yaml`` opened by Hub id.

:func:`load_yaml` is :func:`yaml.safe_load` (plain data only, no ``!!python/`` tags) with three more refusals:

* aliases (``*name``) that expand to more than :data:`MAX_ALIAS_NODES` nodes in all, or an alias used inside
  its own anchor — a few hundred bytes of nested aliases ("billion laughs") otherwise become gigabytes as soon
  as anything walks, prints or validates the value;
* nesting deeper than :data:`MAX_DEPTH` (20,000 ``[`` would otherwise end in a ``RecursionError``);
* a key written twice in one mapping (YAML would keep the last one without a word).

Each refusal is a :class:`~curate.errors.RecipeError` with the line and the fix. :func:`show_value` is the
bounded ``repr`` that messages about a loaded value use (at most ~200 characters, whatever the value).

Example:

    >>> load_yaml("rules: [{concepts: [flattery], action: block}]")
    {'rules': [{'concepts': ['flattery'], 'action': 'block'}]}
    >>> load_yaml("a: 1\\na: 2")
    Traceback (most recent call last):
    ...
    curate.errors.RecipeError: line 2: the key 'a' is written twice in one mapping (first on line 1); keep one.
    >>> len(show_value("x" * 100_000)) <= 201
    True
"""

from __future__ import annotations

import reprlib

import yaml

from .errors import RecipeError

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_SHOWN", "load_yaml", "show_value"]

#: nodes that all aliases of a document may expand to, together (a recipe needs none)
MAX_ALIAS_NODES = 10_000
#: how deep sequences and mappings may nest (a recipe nests 4 levels)
MAX_DEPTH = 32
#: characters of a value that an error message shows
MAX_SHOWN = 200

_FIX_ALIAS = "write the values out instead of using YAML aliases (*name)"


class _BoundedLoader(yaml.SafeLoader):
    """A safe loader that counts what aliases expand to and how deep collections nest while composing."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it expands to (nodes stay alive while composing)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise RecipeError(f"line {mark.line + 1}: an alias is used inside its own anchor; {_FIX_ALIAS}.")
            self._alias_nodes += size
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise RecipeError(
                    f"line {mark.line + 1}: YAML aliases expand to more than {MAX_ALIAS_NODES:,} values (an alias "
                    f"bomb?); {_FIX_ALIAS}."
                )
            return node
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise RecipeError(
                    f"line {mark.line + 1}: lists and mappings nest deeper than {MAX_DEPTH} levels; a recipe nests "
                    "4 (rules → rule → concepts → id). Remove the extra brackets."
                )
        try:
            node = super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1
        self._sizes[id(node)] = 1 + sum(self._sizes[id(c)] for c in _children(node))
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in first:
                        raise RecipeError(
                            f"line {line}: the key {show_value(key)} is written twice in one mapping (first on "
                            f"line {first[key]}); keep one."
                        )
                    first[key] = line
                except TypeError:  # an unhashable key: SafeConstructor says so below
                    continue
        return super().construct_mapping(node, deep=deep)


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str):
    """Parse YAML ``text`` into plain Python values, refusing alias bombs, deep nesting and duplicate keys.

    Raises:
        RecipeError: invalid YAML, or one of the refusals above (with the line and the fix).
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise RecipeError(f"Invalid YAML: {_clip(' '.join(str(err).split()), 2 * MAX_SHOWN)}") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops nesting long before Python's limit
        raise RecipeError(f"the YAML nests too deeply (more than {MAX_DEPTH} levels).") from None
    finally:
        loader.dispose()


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_SHOWN
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 12
_REPR.maxlevel = 3


def show_value(value, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` cut to about ``limit`` characters, without ever building the whole repr of a big value."""
    return _clip(_REPR.repr(value), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
