"""Griffe extension: read keras_fried's Keras-style docstrings as Google style.

mkdocstrings loads it (see `extensions` in mkdocs.yml); it is not part of the
package and is not copied into the site. The docstrings follow Keras's own
layout, which differs from what griffe's Google parser expects in two places:

- an `Example:` header followed by a blank line and doctest lines at the
  header's own indentation (Keras writes them so). Griffe knows only
  `Examples:`, and would leave the doctests as plain Markdown, where `>>>`
  becomes nested quotes and `x[0]["key"]` a broken reference. The header
  becomes `Examples:` and the doctests are indented under it.
- one `Args:` entry for several arguments that share a description
  (`loss, metrics: For compile.`), possibly with the names running over several
  lines. Griffe reads `loss, metrics` as one unknown argument. The entry is
  repeated for each name.

Only the text handed to the parser changes; the package's source does not.
"""

import re

import griffe

_HEADER = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_EXAMPLE_HEADERS = ("Example", "Examples")
_ARGS_HEADERS = ("Args", "Arguments")
_NAME = r"\*{0,2}[A-Za-z_]\w*"
# Names continued on the next line: "activation, use_bias, bias_initializer,".
_NAMES_ONLY = re.compile(rf"^ {{4}}{_NAME}(\s*,\s*{_NAME})*\s*,\s*$")
# An entry for several names: "loss, metrics: For compile".
_SHARED_ENTRY = re.compile(rf"^ {{4}}({_NAME}(?:\s*,\s*{_NAME})+)\s*:(.*)$")


def _indent_examples(lines):
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        match = _HEADER.match(line)
        i += 1
        if not match or match.group(1) not in _EXAMPLE_HEADERS:
            continue
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j == len(lines) or not lines[j].startswith(">>>"):
            continue  # already indented under the header, or no doctest
        out[-1] = "Examples:"  # the section griffe knows ("Example" is not one)
        block = []
        while j < len(lines) and not _HEADER.match(lines[j]):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        out.extend("    " + text if text.strip() else "" for text in block)
        if j < len(lines):
            out.append("")
        i = j
    return out


def _split_shared_args(lines):
    out = []
    in_args = False
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _HEADER.match(line)
        if header:
            in_args = header.group(1) in _ARGS_HEADERS
        elif line and not line.startswith(" "):
            in_args = False
        if not in_args or header:
            out.append(line)
            i += 1
            continue
        entry = line
        j = i + 1
        while _NAMES_ONLY.match(entry) and j < len(lines):
            entry = entry.rstrip() + " " + lines[j].strip()
            j += 1
        match = _SHARED_ENTRY.match(entry)
        if not match:
            out.append(line)
            i += 1
            continue
        description = [match.group(2).strip()]
        while j < len(lines) and lines[j].startswith("        "):
            description.append(lines[j])
            j += 1
        for name in re.split(r"\s*,\s*", match.group(1)):
            out.append(f"    {name}: {description[0]}")
            out.extend(description[1:])
        i = j
    return out


def keras_to_google(text):
    """Returns `text` with the two Keras-style layouts rewritten (see above)."""
    lines = text.split("\n")
    return "\n".join(_split_shared_args(_indent_examples(lines)))


class KerasStyleDocstrings(griffe.Extension):
    """Rewrites each docstring before griffe's Google parser reads it."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = keras_to_google(obj.docstring.value)
