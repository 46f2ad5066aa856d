"""Docstring templates: parameter and example text written once and filled into numpy-style docstrings.

Like scvi-tools' ``scvi.utils._docstrings`` (docrep), without the dependency: a docstring holds a line
``{name}`` where a shared block goes, and :func:`fill_docstring` replaces that line with the block, indented like it.
Only whole-line placeholders of the given names are replaced, so other braces in a docstring stay as they are.
"""

from __future__ import annotations

import re
import textwrap


def fill_docstring(**texts: str):
    r"""A decorator that fills each docstring line ``{name}`` with ``texts[name]``, indented like the line.

    Parameters
    ----------
    **texts
        The shared blocks, unindented (numpy style: a parameter name, then its description indented by four).

    Examples
    --------
    >>> @fill_docstring(param_n="n\n    How many.")
    ... def f(n):
    ...     '''Parameters
    ...     ----------
    ...     {param_n}
    ...     '''
    >>> f.__doc__.splitlines()[2:4]
    ['    n', '        How many.']
    """
    pattern = re.compile(r"^([ \t]*)\{(" + "|".join(map(re.escape, texts)) + r")\}[ \t]*$", flags=re.M)

    def decorate(obj):
        if obj.__doc__:
            obj.__doc__ = pattern.sub(lambda m: textwrap.indent(texts[m.group(2)], m.group(1)), obj.__doc__)
        return obj

    return decorate
