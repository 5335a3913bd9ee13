"""The Python-docs reader keeps prose paragraphs of the main body and drops code, on an inline page."""
import pytest

from tools.sources import python_docs

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8" /><title>os</title></head><body>
<div class="related" role="navigation"><p>Navigation text that is not prose.</p></div>
<div class="body" role="main"><section id="os">
<h1>os — Miscellaneous interfaces<a class="headerlink" href="#os">¶</a></h1>
<p>This module provides a portable way of using
operating system dependent functionality.</p>
<p>Return the value of <code class="xref py py-func"><span class="pre">__fspath__()</span></code> instead.</p>
<p>Set <code class="docutils literal"><span class="pre">x</span> <span class="pre">=</span>
<span class="pre">1</span></code> first.</p>
<p>Return <code class="docutils literal"><span class="pre">True</span></code> if the path exists.</p>
<div class="highlight-python3"><div class="highlight"><pre>import os</pre></div></div>
<dl class="py function"><dt class="sig"><span class="sig-name">getcwd</span>()</dt>
<dd><p>Return a string representing the current working directory.</p>
<div class="versionchanged"><p><span class="versionmodified changed">Changed in version 3.8: </span>The
function now accepts a path-like object.</p></div></dd></dl>
<div class="admonition note"><p class="admonition-title">Note</p><p>Bytes paths are deprecated on Windows.</p></div>
<table><tr><td><p>A table cell.</p></td></tr></table>
<aside class="footnote brackets"><p>A footnote.</p></aside>
<p class="audit-hook">Raises an auditing event os.listdir with argument path.</p>
<p>The name ఈ is Telugu.</p>
</section></div>
<div class="sphinxsidebar"><p>Sidebar text.</p></div>
<div class="footer"><p>Copyright footer.</p></div>
</body></html>"""


def test_page_keeps_only_prose_paragraphs_of_the_main_body():
    assert list(python_docs.page_paragraphs(PAGE)) == [
        "This module provides a portable way of using operating system dependent functionality.",
        "Return True if the path exists.",
        "Return a string representing the current working directory.",
        "The function now accepts a path-like object.",
        "Bytes paths are deprecated on Windows.",
    ]


@pytest.mark.parametrize("text", [
    "Call len() on it.", "the __init__ method", "x = 1", "see setup.py", "use os.path here", "pass --verbose",
    "a snake_case name", "a const char * pointer", "the expression o1 % o2", "support for %s", "a [list]",
    "defined in Include/patchlevel.h", "the separator ';' is", "the value 0xFF", "the _private name",
])
def test_code_like_text_is_detected(text):
    assert python_docs.has_code(text)


@pytest.mark.parametrize("text", [
    "Return a new list, e.g. an empty one.", "New in Python 3.11.", "a well-known, read-only object",
    "C++ extensions and/or modules", "Don’t use it, i.e. “never”.",
])
def test_english_text_is_not_code(text):
    assert not python_docs.has_code(text)


def test_non_latin_letters_and_replacement_characters_are_not_english():
    assert python_docs.is_latin("Marc-André Lemburg’s codec")
    assert not python_docs.is_latin("the Greek letter α")
    assert not python_docs.is_latin("decodes to \ufffd")


def test_read_labels_parts_and_skips_index_pages(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "_static").mkdir()
    page = '<html><body><div role="main"><p>{}</p></div></body></html>'
    (tmp_path / "index.html").write_text(page.format("Welcome to the documentation."), encoding="utf-8")
    (tmp_path / "glossary.html").write_text(page.format("An abstract base class."), encoding="utf-8")
    (tmp_path / "genindex-A.html").write_text(page.format("Index entries here."), encoding="utf-8")
    (tmp_path / "library" / "os.html").write_text(page.format("Miscellaneous operating system interfaces."),
                                                  encoding="utf-8")
    (tmp_path / "_static" / "x.html").write_text(page.format("Static asset text."), encoding="utf-8")
    assert sorted(python_docs.read(tmp_path)) == [
        ("glossary", "An abstract base class."),
        ("library", "Miscellaneous operating system interfaces."),
        ("misc", "Welcome to the documentation."),
    ]


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install python3-doc"):
        list(python_docs.read(tmp_path))


@pytest.mark.skipif(not (python_docs.DEFAULT_ROOT / "index.html").exists(), reason="python3-doc not installed")
def test_real_pages_read_as_prose():
    # two real pages rather than the whole tree (which takes ~8 s on one core)
    for page, least in [("tutorial/controlflow.html", 40), ("library/functions.html", 100)]:
        got = list(python_docs.page_paragraphs((python_docs.DEFAULT_ROOT / page).read_bytes()))
        assert len(got) >= least, page
        assert not [text for text in got if "()" in text or "__" in text or ">>>" in text or "=" in text], page
