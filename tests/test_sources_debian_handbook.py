"""The Debian Handbook reader keeps div.para prose and drops code, on an inline page."""
import pytest

from tools.sources import debian_handbook

PAGE = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>apt</title></head><body>
<div class="legalnotice"><div class="para">This book is licensed under the GPL.</div></div>
<div class="section"><h2 class="title">6.2. aptitude, apt-get, and apt Commands</h2>
<div class="para">
\t\t\t<acronym class="acronym">APT</acronym> is a vast project, and <code class="command">apt-get</code>
\t\t\tis its first front end.<a id="id-1.9.4" class="indexterm"></a>
\t\t</div>
<div class="para">Packages are added with
<code class="command">apt install <em class="replaceable">package</em></code>.</div>
<div class="para">The <code class="filename">Packages.xz</code> file can be large.</div>
<div class="para">Edit the <code class="filename">/etc/apt/sources.list</code> file.</div>
<div class="para">It is listed in <code class="filename">debian/control</code> too.</div>
<div class="para">Use the following commands:<pre class="screen">apt update</pre></div>
<div class="para">A 32-bit system handles 2<sup>32</sup> bytes.</div>
<div class="para">Btrfs is a filesystem developed at Oracle. <div xmlns="" class="url">→\u00a0<a
href="https://btrfs.wiki.kernel.org/">https://btrfs.wiki.kernel.org/</a></div></div>
<div class="sidebar"><div class="sidebar-title">BACK TO BASICS</div>
<div class="para">A process is a running instance of a program.</div></div>
</div></body></html>"""


def test_page_keeps_prose_and_drops_code_notes_and_links():
    assert list(debian_handbook.page_paragraphs(PAGE)) == [
        ("prose", "APT is a vast project, and apt-get is its first front end."),
        ("prose", "Btrfs is a filesystem developed at Oracle."),
        ("sidebar", "A process is a running instance of a program."),
    ]


@pytest.mark.parametrize("text", [
    "edit /etc/fstab now", "the --purge option", "the sources.list file", "set KEY=value", "user@host",
    "Acquire::Languages", "run $HOME",
])
def test_code_like_text_is_detected(text):
    assert debian_handbook.has_code(text)


@pytest.mark.parametrize("text", [
    "Debian Jr. for young children, etc. and more", "a 64-bit system, i.e. amd64", "the “model” to copy",
    "Saint-Étienne and Montpellier",
])
def test_english_text_is_not_code(text):
    assert not debian_handbook.has_code(text)


def test_read_takes_pages_of_the_given_folder(tmp_path):
    (tmp_path / "apt.html").write_text(PAGE, encoding="utf-8")
    assert len(list(debian_handbook.read(tmp_path))) == 3


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install debian-handbook"):
        list(debian_handbook.read(tmp_path))


@pytest.mark.skipif(not debian_handbook.DEFAULT_ROOT.exists(), reason="debian-handbook not installed")
def test_real_source_reads_english_prose():
    got = list(debian_handbook.read())
    assert len(got) > 1500
    assert {kind for kind, _ in got} == {"prose", "sidebar"}
    assert not [text for _, text in got if "https://" in text or "/etc/" in text]
