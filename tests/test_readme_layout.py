"""The README's Layout section names every module of gateway_app, so a newcomer finds each
concept in the file named for it."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def layout_section() -> str:
    text = (REPO / "README.md").read_text()
    return text[text.index("## Layout") : text.index("## Settings")]


def test_the_layout_names_every_module_of_the_package():
    """Tests that each module of gateway_app (migrations aside) appears in README's Layout."""
    layout = layout_section()
    modules = [
        path
        for path in sorted((REPO / "gateway_app").rglob("*.py"))
        if "migrations" not in path.parts and path.name != "__init__.py"
    ]
    # Management commands are listed by the name one types.
    missing = [
        str(p.relative_to(REPO))
        for p in modules
        if p.name not in layout and not ("commands" in p.parts and p.stem in layout)
    ]
    assert not missing, f"README Layout does not name: {missing}"
