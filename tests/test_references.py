"""References and glossary: every citation and term used in the book resolves, and the
bibliography is complete enough to find each work (title, authors, year, DOI/URL/arXiv id)."""

from __future__ import annotations

import re
from pathlib import Path

import pybtex.database
import pytest

from conftest import ROOT

BOOK = ROOT / "book"
BIB = BOOK / "references.bib"
READING_LIST = BOOK / "reference" / "reading-list.md"
GLOSSARY = BOOK / "reference" / "glossary.md"
# {cite}`a,b`, {cite:p}`a`, {cite:t}`a`, {cite:ps}`a` ...; keys may carry a "text <key>" form
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
TERM = re.compile(r"\{term\}`([^`]+)`")


def pages() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.md") if "_build" not in p.parts)


@pytest.fixture(scope="module")
def bib():
    return pybtex.database.parse_file(str(BIB))


def cited_keys() -> dict[str, list[str]]:
    """key -> pages citing it."""
    found: dict[str, list[str]] = {}
    for page in pages():
        for match in CITE.finditer(page.read_text(encoding="utf-8")):
            for key in match[1].split(","):
                key = key.strip()
                found.setdefault(key, []).append(str(page.relative_to(ROOT)))
    return found


def groups() -> dict[str, str]:
    """``lecture`` value -> label prefix, for each bibliography group of the reading list."""
    text = READING_LIST.read_text()
    blocks = re.findall(r"```\{bibliography\}\n(.*?)```", text, re.S)
    found = {}
    for block in blocks:
        value = re.search(r':filter: lecture == "([\w-]+)"', block)
        prefix = re.search(r":labelprefix: (\S+)", block)
        assert prefix, f"a bibliography group without :labelprefix: (labels would clash):\n{block}"
        found[value[1] if value else "*"] = prefix[1]
    return found


# --- Citations -----------------------------------------------------------------------------------


def test_every_cited_key_is_in_the_bibliography(bib):
    cited = cited_keys()
    assert cited, "no {cite} roles found at all: the pattern is broken"
    missing = {key: where for key, where in cited.items() if key not in bib.entries}
    assert not missing, f"cited but not in references.bib: {missing}"


def test_citation_pattern_reads_every_form(tmp_path):
    sample = "{cite}`a2020x` and {cite:p}`b2021y, c2022z` and {cite:t}`d2019w`"
    keys = [k.strip() for m in CITE.finditer(sample) for k in m[1].split(",")]
    assert keys == ["a2020x", "b2021y", "c2022z", "d2019w"]


# --- Entries -------------------------------------------------------------------------------------


def entry_ids(bib):
    return sorted(bib.entries)


def test_bibliography_is_the_course_reading_list(bib):
    """The works the course map and the seeds name are all there."""
    required = {
        "lecun2015deep", "le2012building", "krizhevsky2012imagenet", "russakovsky2015imagenet",
        "lecun1989backpropagation", "mnih2015human", "silver2016mastering",
        "silver2017mastering", "jumper2021highly", "mckinney2020international",
        "rajpurkar2016squad", "nielsen2015neural", "ruder2016overview", "smith2018disciplined",
        "dumoulin2016guide", "he2016deep", "he2016identity", "ronneberger2015unet",
        "goodfellow2014generative", "vaswani2017attention", "goodfellow2015explaining",
        "selvaraju2017gradcam", "zeiler2014visualizing", "chen2020simple", "finn2017model",
        "wright1936factors", "zhang2022ai", "ng2018machine", "karpathy2016backpropagation",
    }
    assert required <= set(bib.entries), required - set(bib.entries)
    arxiv = {e.fields.get("eprint") for e in bib.entries.values()}
    for number in ("1609.04747", "1803.09820", "1603.07285", "1512.03385", "1603.05027",
                   "1505.04597", "1406.2661", "1706.03762", "1412.6572", "1610.02391",
                   "1311.2901", "2002.05709", "1703.03400", "1112.6209", "1409.0575"):
        assert number in arxiv, f"arXiv:{number} missing"


def test_every_entry_is_complete(bib):
    problems = []
    for key, entry in bib.entries.items():
        fields = entry.fields
        if not fields.get("title", "").strip():
            problems.append(f"{key}: no title")
        people = entry.persons.get("author") or entry.persons.get("editor")
        if not people and not (fields.get("organization") or fields.get("institution")):
            problems.append(f"{key}: no author, editor or organization")
        if not re.fullmatch(r"1[5-9]\d\d|20\d\d", fields.get("year", "")):
            problems.append(f"{key}: year {fields.get('year')!r}")
        doi, url, eprint = fields.get("doi"), fields.get("url"), fields.get("eprint")
        if not (doi or url or eprint):
            problems.append(f"{key}: no doi, url or eprint")
        if doi and not re.fullmatch(r"10\.\d{4,9}/\S+", doi):
            problems.append(f"{key}: doi {doi!r} is not a bare DOI (no https://doi.org/)")
        if url and not re.fullmatch(r"https?://\S+", url):
            problems.append(f"{key}: url {url!r}")
        if eprint:
            if fields.get("archiveprefix", "").lower() != "arxiv":
                problems.append(f"{key}: eprint without archiveprefix = {{arXiv}}")
            if not re.fullmatch(r"\d{4}\.\d{4,5}", eprint):
                problems.append(f"{key}: eprint {eprint!r} is not an arXiv id")
    assert not problems, "\n".join(problems)


def test_keys_are_lowercase_and_works_unique(bib):
    bad = [key for key in bib.entries if not re.fullmatch(r"[a-z][a-z0-9-]*\d{4}[a-z0-9-]*", key)]
    assert not bad, f"keys must be lowercase author + year + word: {bad}"
    for field in ("doi", "eprint"):
        seen: dict[str, str] = {}
        for key, entry in bib.entries.items():
            value = entry.fields.get(field)
            if value:
                assert value.lower() not in seen, f"{key} and {seen[value.lower()]}: same {field}"
                seen[value.lower()] = key


def test_no_string_macros_or_duplicates():
    text = BIB.read_text()
    assert not re.search(r"@string\s*\{", text, re.I)
    keys = re.findall(r"^@\w+\{([^,]+),", text, re.M)
    assert len(keys) == len(set(keys)), "duplicate keys in references.bib"


# --- Reading list --------------------------------------------------------------------------------


def test_reading_list_groups_every_entry_once(bib):
    found = groups()
    assert "*" in found, "the last group must catch entries without a known lecture field"
    assert len(set(found.values())) == len(found), "label prefixes must be unique"
    lectures = {"prologue", *(f"l{i}" for i in range(1, 9))}
    assert lectures <= set(found), lectures - set(found)
    catch_all = re.search(r":filter: lecture not in \{([^}]*)\}", READING_LIST.read_text())[1]
    assert set(re.findall(r'"([\w-]+)"', catch_all)) == set(found) - {"*"}
    unknown = {key: entry.fields.get("lecture") for key, entry in bib.entries.items()
               if entry.fields.get("lecture") not in set(found) | {"general"}}
    assert not unknown, f"entries without a reading-list group (lecture field): {unknown}"


def test_reading_list_page_shows_each_entry_once(book, bib):
    assert book.ok, book.log[-3000:]
    html = (book.html / "book" / "reference" / "reading-list.html").read_text()
    entries = re.findall(r'role="doc-biblioentry"', html)
    assert len(entries) == len(bib.entries)
    # a label holds backlinks when the entry is cited on the page itself: strip the tags
    labels = [re.sub(r"<[^>]+>|\[", "", label) for label in
              re.findall(r'<span class="label">(.*?)<span class="fn-bracket">\]', html)]
    assert len(labels) == len(set(labels)) == len(bib.entries), labels


# --- Glossary ------------------------------------------------------------------------------------


def glossary_terms() -> list[str]:
    text = GLOSSARY.read_text()
    block = re.search(r"```\{glossary\}\n(.*?)\n```", text, re.S)
    assert block, "no glossary directive"
    terms = []
    for line in block[1].splitlines():
        if line and not line[0].isspace() and not line.startswith(":"):
            terms.append(line.strip())
    return terms


def test_glossary_terms_are_unique_capitalised_and_defined():
    terms = glossary_terms()
    assert len(terms) >= 40
    lowered = [t.lower() for t in terms]
    assert len(set(lowered)) == len(lowered), "a term is defined twice"
    for term in terms:
        assert term[0].isupper() or not term[0].isalpha(), f"{term!r}: capitalise it"
    text = GLOSSARY.read_text()
    assert ":sorted:" in text
    for term in terms:  # each term is followed by its indented definition
        assert re.search(rf"^{re.escape(term)}\n  \S", text, re.M), f"{term!r} has no definition"


def test_every_term_used_is_defined():
    defined = {t.lower() for t in glossary_terms()}
    used: dict[str, list[str]] = {}
    for page in pages():
        for match in TERM.finditer(page.read_text(encoding="utf-8")):
            target = re.search(r"<([^>]+)>\s*$", match[1])
            name = (target[1] if target else match[1]).strip()
            used.setdefault(name, []).append(str(page.relative_to(ROOT)))
    assert used, "no {term} roles found at all: the pattern is broken"
    missing = {name: where for name, where in used.items() if name.lower() not in defined}
    assert not missing, f"terms used but not in the glossary: {missing}"


def test_core_terms_are_in_the_glossary():
    defined = {t.lower() for t in glossary_terms()}
    core = ["epoch", "batch", "mini-batch", "logit", "softmax", "loss", "cross-entropy",
            "gradient", "backpropagation", "learning rate", "overfitting", "regularisation",
            "weight decay", "dropout", "activation function", "relu", "sigmoid", "convolution",
            "kernel", "filter", "stride", "padding", "pooling", "feature map",
            "batch normalisation", "residual connection", "u-net", "dice coefficient",
            "data augmentation", "validation set", "test set", "hyperparameter", "gpu", "cuda",
            "mixed precision", "checkpoint", "tensor", "autograd"]
    assert not [t for t in core if t not in defined]


def test_the_build_finds_pybtex_plugins_without_reading_entry_points(monkeypatch):
    """book/_ext/dlcc_book.py registers the pybtex plugins sphinxcontrib-bibtex asks for at
    every citation: the same classes as the installed entry points, found in memory."""
    from types import SimpleNamespace

    from pybtex import plugin

    from dlcc_book import _remember_bibtex_plugins

    wanted = [("pybtex.backends", "docutils"), ("pybtex.backends", "plaintext"),
              ("pybtex.style.formatting", "plain")]
    installed = [plugin.find_plugin(*key) for key in wanted]
    _remember_bibtex_plugins(None, SimpleNamespace(bibtex_default_style="plain"))

    def no_entry_points(**selection):
        raise AssertionError(f"entry points read for {selection}")

    monkeypatch.setattr(plugin, "entry_points", no_entry_points)
    assert [plugin.find_plugin(*key) for key in wanted] == installed
