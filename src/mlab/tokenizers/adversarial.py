"""Texts that break tokenizers: accents (composed and decomposed), CJK and other scripts,
emoji with joiners and skin tones, zero-width and control characters, odd whitespace, very
long words, special tokens written in the text, and empty strings. The tests and the
course's checks run every tokenizer over them next to HuggingFace's."""

from __future__ import annotations

__all__ = ["adversarial_texts"]

_PIECES = (
    "Héllo",
    "naïve café",
    "ÉCOLE",
    "Straße ẞ",
    "İstanbul \u0130\u0307",
    "ΟΔΟΣ",
    "ﬁnance ﬀ ﬂ ﬆ",
    "Ǆemal ǅ ǆ Ǉ ǈ",
    "你好世界",
    "日本語のテキスト",
    "한국어 텍스트",
    "😀🎉 emoji👍🏽",
    "👨\u200d👩\u200d👧 family",
    "🇫🇷 flags",
    "a\u200bb",
    "x\u200dy",
    "zero\ufeffwidth",
    "ctrl\x00\x01\x7fchars",
    "tab\tnew\nline\rret",
    "nbsp\u00a0sp",
    "line\u2028sep\u2029para",
    "vt\x0bff\x0c",
    "\x85next",
    "e\u0301 u\u0308 A\u030a",
    "A" * 120,
    "supercalifragilisticexpialidocious" * 3,
    "",
    "   ",
    "\n\n",
    "\u3000全角",
    "mixed Ελληνικά кириллица עברית العربية हिन्दी",
    "$^`~|\\",
    "don't!!! ... ?! I'm we've they're it's",
    "[MASK] [mask] x[CLS]y [SEP][PAD]",
    "a<|endoftext|>b <|endoftext|>",
    "\ufffdrepl",
    "\U0002a700 ext \uf900compat",
    "Ⅻ ½ ² ℃ ™",
    "ʼapostrophe ’quote“",
    "1,234.56e-7 3.14159",
    "C++ / C# -> x",
    "http://example.com/a?b=c&d=e",
    "ÅÄÖ åäö",
    "ᾼ ᾈ",
    "ΣΑΣ σας",
    "a\u0000b",
    "\U000e0001tag",
    "\ud7a3 ȺȾ",
    "  leading and trailing  ",
    "many     spaces\t\ttabs",
)


def adversarial_texts() -> list[str]:
    """The pieces above, and runs of five of them joined by spaces."""
    joined = [" ".join(_PIECES[i : i + 5]) for i in range(0, len(_PIECES), 3)]
    return [*_PIECES, *joined]
