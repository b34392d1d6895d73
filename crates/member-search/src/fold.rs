//! Unicode folding and tokenization, the same for indexed fields and queries.
//!
//! Folding: compatibility decomposition (NFKD: full-width `Ａ` → `A`, ligatures apart),
//! combining marks dropped (`é` → `e`, `Đặng` → `dang`, Arabic harakat), lower case, and a
//! few letters NFKD keeps whole (`ß` → `ss`, `đ` → `d`, `ł` → `l`, `ø` → `o`, `æ` → `ae`).
//! Tokens: runs of letters and digits in any script; apostrophes inside a word are dropped
//! (`O'Brien` → `obrien`); everything else separates. Scripts written without spaces (Han,
//! kana, Hangul) give one token per character and one per neighbouring pair, so `李小龙`
//! is found by `小龙` and by `李`.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// What a token is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Letters and digits of a script written with spaces: matched exactly, by prefix
    /// and with typos.
    Word,
    /// One character, or two neighbouring ones, of a script written without spaces:
    /// matched exactly.
    Ideographic,
}

/// A token of a text: its folded form and where it is in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The folded text.
    pub text: String,
    /// What it is made of.
    pub kind: TokenKind,
    /// For each folded character, the index (in characters) of the original character it
    /// comes from.
    pub origin: Vec<usize>,
}

impl Token {
    /// The original characters the first `folded_chars` folded characters come from, as a
    /// half-open range of character indexes.
    #[must_use]
    pub fn original_range(&self, folded_chars: usize) -> (usize, usize) {
        let n = folded_chars.clamp(1, self.origin.len().max(1));
        let start = self.origin.first().copied().unwrap_or(0);
        let end = self.origin.get(n - 1).map_or(start, |&i| i + 1);
        (start, end)
    }

    /// The original characters the token comes from (half-open, in characters).
    #[must_use]
    pub fn full_range(&self) -> (usize, usize) {
        self.original_range(self.origin.len())
    }
}

/// Letters that NFKD keeps whole, folded by hand.
fn special(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' | 'ẞ' => "ss",
        'đ' | 'Đ' | 'ð' | 'Ð' => "d",
        'ł' | 'Ł' => "l",
        'ø' | 'Ø' => "o",
        'æ' | 'Æ' => "ae",
        'œ' | 'Œ' => "oe",
        'þ' | 'Þ' => "th",
        'ı' => "i",
        'ς' => "σ",
        // Arabic tatweel (elongation): typography, not a letter.
        'ـ' => "",
        _ => return None,
    })
}

/// Folds one character into `out` (possibly several characters, possibly none).
fn fold_char(c: char, out: &mut impl FnMut(char)) {
    if c.is_ascii() {
        out(c.to_ascii_lowercase());
        return;
    }
    if let Some(s) = special(c) {
        s.chars().for_each(&mut *out);
        return;
    }
    for d in std::iter::once(c).nfkd() {
        if is_combining_mark(d) {
            continue;
        }
        if let Some(s) = special(d) {
            s.chars().for_each(&mut *out);
            continue;
        }
        for l in d.to_lowercase() {
            if !is_combining_mark(l) {
                out(l);
            }
        }
    }
}

/// The folded form of a text (see the module documentation), separators kept.
///
/// ```
/// assert_eq!(member_search::fold::fold("Nguyễn Đặng ＡＢＣ Straße"), "nguyen dang abc strasse");
/// ```
#[must_use]
pub fn fold(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        fold_char(c, &mut |f| s.push(f));
    }
    s
}

/// Whether a (folded) character belongs to a script written without spaces between words.
#[must_use]
pub fn is_ideographic(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3400..=0x4DBF   // CJK Extension A
        | 0x4E00..=0x9FFF   // CJK Unified Ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK Compatibility Ideographs
        | 0x20000..=0x3134F // CJK Extensions B–G
    )
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | 'ʼ' | '`')
}

/// The tokens of a text (see the module documentation), in order.
///
/// ```
/// use member_search::fold::tokenize;
/// let words: Vec<_> = tokenize("José-Luis O'Brien").into_iter().map(|t| t.text).collect();
/// assert_eq!(words, ["jose", "luis", "obrien"]);
/// let cjk: Vec<_> = tokenize("李小龙").into_iter().map(|t| t.text).collect();
/// assert_eq!(cjk, ["李", "李小", "小", "小龙", "龙"]);
/// ```
#[must_use]
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut folded: Vec<(char, usize)> = Vec::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        fold_char(c, &mut |f| folded.push((f, i)));
    }
    let mut tokens = Vec::new();
    let mut word = Token {
        text: String::new(),
        kind: TokenKind::Word,
        origin: Vec::new(),
    };
    let flush = |word: &mut Token, tokens: &mut Vec<Token>| {
        if !word.text.is_empty() {
            tokens.push(std::mem::replace(
                word,
                Token {
                    text: String::new(),
                    kind: TokenKind::Word,
                    origin: Vec::new(),
                },
            ));
        }
    };
    for (k, &(c, i)) in folded.iter().enumerate() {
        if is_ideographic(c) {
            flush(&mut word, &mut tokens);
            tokens.push(Token {
                text: c.to_string(),
                kind: TokenKind::Ideographic,
                origin: vec![i],
            });
            if let Some(&(next, j)) = folded.get(k + 1)
                && is_ideographic(next)
            {
                tokens.push(Token {
                    text: [c, next].iter().collect(),
                    kind: TokenKind::Ideographic,
                    origin: vec![i, j],
                });
            }
        } else if c.is_alphanumeric() {
            word.text.push(c);
            word.origin.push(i);
        } else if is_apostrophe(c)
            && !word.text.is_empty()
            && folded
                .get(k + 1)
                .is_some_and(|&(n, _)| n.is_alphanumeric() && !is_ideographic(n))
        {
            // Inside a word: dropped, the word goes on.
        } else {
            flush(&mut word, &mut tokens);
        }
    }
    flush(&mut word, &mut tokens);
    tokens
}

/// The word without the Arabic definite article (`الحسن` → `حسن`) when at least three
/// letters remain: indexed beside the whole word, so a family name is found with or
/// without its article.
///
/// ```
/// use member_search::fold::{tokenize, without_article};
/// let t = &tokenize("الحسن")[0];
/// assert_eq!(without_article(t).map(|v| v.text), Some("حسن".to_owned()));
/// assert_eq!(without_article(&tokenize("Alan")[0]), None);
/// ```
#[must_use]
pub fn without_article(token: &Token) -> Option<Token> {
    let rest = token.text.strip_prefix("\u{627}\u{644}")?;
    (token.kind == TokenKind::Word && rest.chars().count() >= 3).then(|| Token {
        text: rest.to_owned(),
        kind: TokenKind::Word,
        origin: token.origin.get(2..).unwrap_or_default().to_vec(),
    })
}

/// Each token of a text followed by its variant without an article, if any.
pub(crate) fn index_tokens(text: &str) -> impl Iterator<Item = Token> {
    tokenize(text).into_iter().flat_map(|t| {
        let v = without_article(&t);
        std::iter::once(t).chain(v)
    })
}

/// The words of a query: its word tokens, and for a run of ideographs its single
/// character (one ideograph) or its neighbouring pairs (several).
#[must_use]
pub fn query_words(text: &str) -> Vec<Token> {
    fn flush(uni: &mut Vec<Token>, bi: &mut Vec<Token>, out: &mut Vec<Token>) {
        if bi.is_empty() {
            out.append(uni);
        } else {
            out.append(bi);
            uni.clear();
        }
    }
    let mut out = Vec::new();
    let (mut uni, mut bi) = (Vec::new(), Vec::new());
    let mut after_bigram = false;
    for t in tokenize(text) {
        let is_bigram = t.kind == TokenKind::Ideographic && t.text.chars().count() == 2;
        match t.kind {
            TokenKind::Word => {
                flush(&mut uni, &mut bi, &mut out);
                out.push(t);
            }
            TokenKind::Ideographic if is_bigram => bi.push(t),
            TokenKind::Ideographic => {
                // A character not joined to the previous one starts a new run.
                if !after_bigram {
                    flush(&mut uni, &mut bi, &mut out);
                }
                uni.push(t);
            }
        }
        after_bigram = is_bigram;
    }
    flush(&mut uni, &mut bi, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(tokens: Vec<Token>) -> Vec<String> {
        tokens.into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn folds_diacritics_case_width_and_special_letters() {
        assert_eq!(fold("ÉMILE Zoë"), "emile zoe");
        assert_eq!(fold("Trần Thị Thủy"), "tran thi thuy");
        assert_eq!(fold("Đỗ Bùi Phạm"), "do bui pham");
        assert_eq!(fold("Ｊｏｈｎ　Ｓｍｉｔｈ"), "john smith");
        assert_eq!(fold("Groß Łukasz Søren Ærø"), "gross lukasz soren aero");
        assert_eq!(fold("İstanbul"), "istanbul");
        assert_eq!(fold("Ёлкин Йосиф"), "елкин иосиф");
        assert_eq!(fold("ﬁnn"), "finn");
        // Arabic: harakat and tatweel dropped, letters kept.
        assert_eq!(fold("مُحَمَّد"), "محمد");
        assert_eq!(fold("محـــمد"), "محمد");
    }

    #[test]
    fn tokenizes_any_script() {
        assert_eq!(
            texts(tokenize("Ana-María  de la Cruz")),
            ["ana", "maria", "de", "la", "cruz"]
        );
        assert_eq!(
            texts(tokenize("john.smith+pta@example.org")),
            ["john", "smith", "pta", "example", "org"]
        );
        assert_eq!(texts(tokenize("Дмитрий Иванов")), ["дмитрии", "иванов"]);
        assert_eq!(texts(tokenize("أحمد الحسن")), ["احمد", "الحسن"]);
        assert_eq!(texts(tokenize("Nguyễn Văn An")), ["nguyen", "van", "an"]);
        assert_eq!(texts(tokenize("王芳 Wang")), ["王", "王芳", "芳", "wang"]);
        assert_eq!(texts(tokenize("'quoted' d'Arc")), ["quoted", "darc"]);
        assert!(tokenize(" -- ").is_empty());
    }

    #[test]
    fn keeps_where_each_token_came_from() {
        let t = tokenize("Straße Zoë");
        assert_eq!(t[0].text, "strasse");
        assert_eq!(t[0].full_range(), (0, 6));
        assert_eq!(t[0].original_range(6), (0, 5), "'ss' is one original ß");
        assert_eq!(t[1].full_range(), (7, 10));
        let cjk = tokenize("李小龙");
        assert_eq!(cjk[3].text, "小龙");
        assert_eq!(cjk[3].full_range(), (1, 3));
    }

    #[test]
    fn query_words_use_bigrams_for_ideographs() {
        assert_eq!(texts(query_words("李小龙")), ["李小", "小龙"]);
        assert_eq!(texts(query_words("小龙")), ["小龙"]);
        assert_eq!(texts(query_words("李")), ["李"]);
        assert_eq!(texts(query_words("李 Bruce 小龙")), ["李", "bruce", "小龙"]);
        assert_eq!(texts(query_words("Ｊｏｈｎ")), ["john"]);
    }
}
