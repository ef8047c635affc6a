"""Which encoding a text that is not UTF-8 is in (issue 20, point 7): every codec Python knows,
grouped by how it reads the file, charset-normalizer's candidates first, so a person can see
which reading is right."""

from __future__ import annotations

from charlstm_core.files.encodings import readings, sample_lines, text_codecs

ESPERANTO = (
    "Saluton!\nLa ĉefa celo de Esperanto estas faciligi la komunikadon inter homoj.\n"
    "Ŝi manĝas ĝis la vespero, kaj ĉiuj ĝojas pro la bela ĥoro. Ĵaŭdo venas.\n"
) * 40
FRENCH = """Il était une fois, dans un petit village au bord de la mer, une jeune fille qui rêvait
de voyages. Chaque matin, elle se levait avant l'aube et regardait les bateaux quitter le port.
Son père, pêcheur depuis toujours, lui répétait que la mer était dangereuse, mais elle n'écoutait
guère ses conseils. Un jour d'été, un étranger arriva au café du village : il parlait de contrées
lointaines, de forêts immenses et de déserts brûlants. « Où êtes-vous né ? » lui demanda-t-elle.
Le lendemain, elle prépara un sac, embrassa sa mère et partit à l'aventure, le cœur léger.
"""
RUSSIAN = "Привет, мир! Как дела? Всё хорошо, спасибо.\n" * 60


def reading_of(found, codec):
    return next(i for i, r in enumerate(found) if codec in r.codecs)


def test_every_text_codec_is_offered_and_no_escape():
    names = text_codecs()
    assert len(names) > 90
    for name in ("iso8859-3", "iso8859-1", "cp1252", "koi8-r", "utf-16", "big5"):
        assert name in names
    for name in ("unicode-escape", "idna", "undefined", "punycode", "base64"):
        assert name not in names


def test_the_iso_8859_3_reading_is_offered_and_reads_right():
    found = readings(ESPERANTO.encode("iso-8859-3"))
    i = reading_of(found, "iso8859-3")
    assert found[i].text.startswith(ESPERANTO[:200]) and found[i].clean
    assert i < 20  # among the clean Latin readings, not after the Cyrillic and Greek ones
    latin1 = found[reading_of(found, "iso8859-1")]
    assert "ĉ" not in latin1.text  # the reading the old dialog suggested: æ for ĉ
    assert len({r.text for r in found}) == len(found)  # one row per distinct reading


def test_the_detector_ranks_a_clear_case_first():
    for text, codec in ((FRENCH, "cp1252"), (RUSSIAN, "koi8-r")):
        best = readings(text.encode(codec))[0]
        assert codec in best.codecs and best.detected and best.text.startswith(text[:100])


def test_a_suggested_encoding_comes_first():
    raw = FRENCH.encode("utf-16-le")
    assert readings(raw, suggested="utf-16-le")[0].codecs[0] == "utf-16-le"


def test_the_lines_worth_comparing_are_those_beyond_ascii():
    assert sample_lines("abc\nxyz\nĉu\nne\nŝi", 2) == [2, 4]
    assert sample_lines("abc\nxyz", 3) == [0, 1]
