"""MkDocs hook: the site's home page is README.md, with its links made site-relative.

mkdocs.yml lists this file under `hooks`; it is not part of the package and is not
copied into the site. README.md links to pages as `docs/<page>.md`; on the site
they are `<page>.md`, and mkdocs then checks that each one exists.
"""

import re
from pathlib import Path

_DOCS_LINK = re.compile(r"\]\(docs/")


def on_page_markdown(markdown, page, config, **kwargs):
    if page.file.src_uri != "index.md":
        return markdown
    readme = Path(config.config_file_path).parent / "README.md"
    return _DOCS_LINK.sub("](", readme.read_text(encoding="utf-8"))
