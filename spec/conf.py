"""Sphinx configuration for the taktora specification (sphinx-needs)."""

project = "taktora"
author = "taktora developers"
copyright = "2026, taktora developers"
extensions = ["sphinx_needs", "sphinxcontrib.mermaid"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["needs.beta"]

needs_id_required = True
needs_id_regex = r"^(REQ|FEAT|ARCH|BB|TEST)_[A-Z0-9_]+$"
needs_types = [
    {"directive": "feat", "title": "Feature", "prefix": "FEAT_", "color": "#BFD8D2", "style": "node"},
    {"directive": "req", "title": "Requirement", "prefix": "REQ_", "color": "#DCB239", "style": "node"},
    {"directive": "arch", "title": "Architecture", "prefix": "ARCH_", "color": "#9DC5BB", "style": "node"},
    {"directive": "bb", "title": "Building block", "prefix": "BB_", "color": "#C5D5E4", "style": "node"},
    {"directive": "test", "title": "Test", "prefix": "TEST_", "color": "#DF744A", "style": "node"},
]
needs_links = {
    "satisfies": {"incoming": "is satisfied by", "outgoing": "satisfies"},
    "verifies": {"incoming": "is verified by", "outgoing": "verifies"},
    "refines": {"incoming": "is refined by", "outgoing": "refines"},
}
