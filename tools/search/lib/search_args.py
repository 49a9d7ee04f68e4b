"""Arguments of the search commands: `<term> [<where>]` typed as text, or `<term> --dir|--file <where>` from a
native function call (OEC's command-line rule)."""

from __future__ import annotations


def term_and_place(argv: list[str], option: str, usage: str) -> tuple[str, str | None] | None:
    """(term, place) or None after printing the usage line."""
    words, place, index = [], None, 0
    while index < len(argv):
        if argv[index] == option and index + 1 < len(argv):
            place, index = argv[index + 1], index + 2
            continue
        words.append(argv[index])
        index += 1
    if place is None and len(words) == 2:
        words, place = words[:1], words[1]
    if len(words) != 1 or not words[0]:
        print(usage)
        return None
    return words[0], place


MAX_RESULTS = 100
"""More matching files (search_dir) or lines (search_file) than this asks the model to narrow its search."""
