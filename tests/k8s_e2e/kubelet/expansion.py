"""``$(VAR)`` references in a container's env values, expanded as the kubelet does.

``$(VAR)`` becomes the value of a variable defined earlier in the list or of a service variable
(``KUBERNETES_SERVICE_HOST``; not the image's ``PATH``, which the runtime adds later); ``$$`` is
an escaped ``$`` (so ``$$(VAR)`` stays the literal ``$(VAR)``); a reference to an unknown
variable, an unclosed ``$(`` and a ``$`` before anything else stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping


def expand(text: str, defined: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
            continue
        after = text[i + 1]
        if after == "$":
            out.append("$")
            i += 2
        elif after == "(" and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(defined.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
