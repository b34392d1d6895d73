//! An in-memory member search index for one organization: any script, typo tolerant,
//! ranked, with highlights, "did you mean" suggestions, facet counts and per-field
//! visibility. Pure: no database, no framework, no I/O — the server builds one per org
//! from the database and keeps it current from change events.
//!
//! # Matching
//! Fields and queries are folded and tokenized alike ([`fold`]). A member matches when
//! **every** query word matches some visible word of theirs:
//! - **exact**: the same folded word;
//! - **prefix**: the query word starts an indexed word (type-ahead), found by a range scan
//!   of the sorted term dictionary;
//! - **typo**: optimal-string-alignment distance ([`distance`]) of 1 when the longer of
//!   the two words has 4–7 characters, 2 from 8 (a query word of 3 characters can reach
//!   a 4-character name by one deletion: `gng` → `gang`; two words of 3 characters
//!   never match with a typo). Candidates come from a deletion neighbourhood (SymSpell):
//!   every indexed name word's deletions up to its budget point to it, a query word's
//!   deletions are looked up and each candidate is verified — never a scan of members.
//!   Ideographic tokens (CJK) match exactly only.
//!
//! # Ranking
//! Per query word its best match counts `10 × quality + field` (quality: exact 4,
//! prefix 3, one typo 2, two typos 1; field: first or last name 2, committee 1, e-mail 0);
//! a member's score is the sum over the query words. Equal scores are ordered by how
//! common the matched words are among the org's names (the sum of the number of members
//! whose first or last name holds each matched word: a common name is the likelier
//! intent — `jon` is more likely Jones than Jonsson), then by id (ids are time-ordered:
//! older members first) — never alphabetically. Within equal scores the distinct matched
//! names take turns (the first member of each name in that order, then the second of
//! each, …), so a type-ahead page shows the different names a prefix can complete to,
//! not twenty namesakes of the most common one.
//!
//! ```
//! use member_search::{Field, FieldSet, Member, MemberIndex, SearchRequest};
//!
//! let mut index = MemberIndex::new();
//! index.upsert(Member::new(uuid::Uuid::from_u128(1), "Nguyễn", "Thị Thủy", "thuy@example.org"));
//! index.upsert(Member::new(uuid::Uuid::from_u128(2), "James", "Jones", "jj@example.org"));
//! let found = index.search(&SearchRequest::new("Jmaes Ojnes")).unwrap();
//! assert_eq!(found.hits[0].id, uuid::Uuid::from_u128(2));
//! let found = index.search(&SearchRequest::new("nguyen thuy")).unwrap();
//! assert_eq!(found.hits[0].id, uuid::Uuid::from_u128(1));
//! assert_eq!(found.hits[0].matches[0].field, Field::FirstName);
//! assert_eq!(found.hits[0].matches[0].ranges, [(0, 6)]);
//! ```

pub mod distance;
pub mod fold;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Bound;

use uuid::Uuid;

use crate::distance::{allowed_typos, osa_bounded};
use crate::fold::{Token, TokenKind, query_words};

/// A searchable field of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// First name.
    FirstName,
    /// Last name.
    LastName,
    /// E-mail address.
    Email,
    /// Committee.
    Committee,
}

impl Field {
    /// Every field, in display order.
    pub const ALL: [Self; 4] = [
        Self::FirstName,
        Self::LastName,
        Self::Email,
        Self::Committee,
    ];

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    const fn is_name(self) -> bool {
        matches!(self, Self::FirstName | Self::LastName)
    }

    /// The field's part of a match's score: names above committee above e-mail.
    const fn weight(self) -> u32 {
        match self {
            Self::FirstName | Self::LastName => 2,
            Self::Committee => 1,
            Self::Email => 0,
        }
    }
}

/// A set of [`Field`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FieldSet(u8);

impl FieldSet {
    /// No field.
    pub const NONE: Self = Self(0);
    /// Every field.
    pub const ALL: Self = Self(0b1111);

    /// The set of the given fields.
    #[must_use]
    pub fn of(fields: &[Field]) -> Self {
        fields.iter().fold(Self::NONE, |s, &f| s.with(f))
    }

    /// This set and `field`.
    #[must_use]
    pub const fn with(self, field: Field) -> Self {
        Self(self.0 | field.bit())
    }

    /// This set without `field`.
    #[must_use]
    pub const fn without(self, field: Field) -> Self {
        Self(self.0 & !field.bit())
    }

    /// Whether `field` is in the set.
    #[must_use]
    pub const fn contains(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }
}

/// A member as the index sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's id (the user id; time-ordered, the final tiebreak).
    pub id: Uuid,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// Committee, if any.
    pub committee: Option<String>,
    /// Role (a facet).
    pub role: String,
    /// Status (a facet).
    pub status: String,
    /// The fields the member hides from other members (their privacy choices): such a
    /// field neither matches nor shows for a request with
    /// [`SearchRequest::apply_member_choices`].
    pub hidden: FieldSet,
}

impl Member {
    /// A member with these names and e-mail, no committee, role `member`, status
    /// `active`, nothing hidden.
    #[must_use]
    pub fn new(id: Uuid, first_name: &str, last_name: &str, email: &str) -> Self {
        Self {
            id,
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            email: email.to_owned(),
            committee: None,
            role: "member".to_owned(),
            status: "active".to_owned(),
            hidden: FieldSet::NONE,
        }
    }

    /// The text of a field ("" when absent).
    #[must_use]
    pub fn field(&self, field: Field) -> &str {
        match field {
            Field::FirstName => &self.first_name,
            Field::LastName => &self.last_name,
            Field::Email => &self.email,
            Field::Committee => self.committee.as_deref().unwrap_or_default(),
        }
    }
}

/// A search: the text and what the searcher may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest<'a> {
    /// What was typed.
    pub text: &'a str,
    /// The fields the searcher may see of anyone (the org's directory policy for this
    /// audience; every field for admins): other fields neither match nor show.
    pub visible_fields: FieldSet,
    /// Whether each member's own hidden fields ([`Member::hidden`]) are left out too
    /// (other members' searches: yes; admins reading the record: no).
    pub apply_member_choices: bool,
    /// How many hits to return (the total and the facets count them all).
    pub limit: usize,
}

impl<'a> SearchRequest<'a> {
    /// A search of every field, member choices applied, 20 hits.
    #[must_use]
    pub const fn new(text: &'a str) -> Self {
        Self {
            text,
            visible_fields: FieldSet::ALL,
            apply_member_choices: true,
            limit: 20,
        }
    }
}

/// Why a search text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// Nothing searchable in it.
    #[error("the search text has no letters or digits")]
    Empty,
    /// Longer than [`MAX_CHARS`] characters.
    #[error("the search text is longer than {MAX_CHARS} characters")]
    TooLong,
    /// More than [`MAX_WORDS`] words (ideographs count by neighbouring pairs).
    #[error("the search text has more than {MAX_WORDS} words")]
    TooManyWords,
}

/// The longest search text, in characters.
pub const MAX_CHARS: usize = 100;
/// The most query words.
pub const MAX_WORDS: usize = 12;

/// How a query word matched an indexed word, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    /// Two typos.
    TwoTypos = 1,
    /// One typo.
    OneTypo = 2,
    /// The query word starts the indexed word.
    Prefix = 3,
    /// The same word.
    Exact = 4,
}

/// Where a hit matched: a field and the matched character ranges (half-open, in
/// characters of the field's original text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMatch {
    /// The field.
    pub field: Field,
    /// The matched ranges, sorted, not overlapping.
    pub ranges: Vec<(usize, usize)>,
}

/// One member found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The member.
    pub id: Uuid,
    /// The score (see the crate documentation).
    pub score: u32,
    /// How common the matched words are among the org's names (the second sort key).
    pub commonness: u32,
    /// The highlights, by field.
    pub matches: Vec<FieldMatch>,
}

/// "Did you mean": the closest indexed word to a query word without an exact or prefix
/// match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The query word (folded).
    pub word: String,
    /// The suggested word (folded, as indexed).
    pub suggestion: String,
    /// Their edit distance.
    pub distance: usize,
}

/// Counts of a facet's values over every hit, most frequent first (then by value).
pub type FacetCounts = Vec<(String, usize)>;

/// Facet counts over every hit (not only the returned page).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facets {
    /// By role.
    pub role: FacetCounts,
    /// By status.
    pub status: FacetCounts,
    /// By committee (only where the committee is visible to the searcher).
    pub committee: FacetCounts,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchResults {
    /// How many members matched.
    pub total: usize,
    /// The best `limit` of them, best first.
    pub hits: Vec<Hit>,
    /// Suggestions for the query words without an exact or prefix match.
    pub suggestions: Vec<Suggestion>,
    /// The query with every suggestion applied, when there is one.
    pub did_you_mean: Option<String>,
    /// Facet counts over all hits.
    pub facets: Facets,
}

type TermId = u32;

/// A member found, while ranking.
struct Ranked {
    slot: Slot,
    score: u32,
    commonness: u32,
    id: Uuid,
    /// The matched words (a hash of their ids).
    group: u64,
    /// Its place among the members found by the same words with the same score.
    turn: u32,
}
type Slot = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Posting {
    slot: Slot,
    field: Field,
}

#[derive(Debug)]
struct Term {
    text: Box<str>,
    chars: Box<[char]>,
    kind: TokenKind,
    postings: Vec<Posting>,
    /// Postings in a name field.
    name_count: u32,
    /// Whether its deletions are in the typo neighbourhood.
    fuzzy: bool,
}

#[derive(Debug)]
struct Doc {
    member: Member,
    terms: Vec<TermId>,
}

/// The search index of one organization's members.
#[derive(Debug, Default)]
pub struct MemberIndex {
    docs: Vec<Option<Doc>>,
    free: Vec<Slot>,
    by_id: HashMap<Uuid, Slot>,
    dictionary: BTreeMap<Box<str>, TermId>,
    terms: Vec<Term>,
    /// Hash of a deletion variant → the name words that have it (hash collisions only
    /// add candidates, which are verified).
    deletions: HashMap<u64, Vec<TermId>>,
}

/// Deletion budget of an indexed word: what a query word within the typo budget of
/// [`allowed_typos`] may need.
const fn deletion_budget(len: usize) -> usize {
    match len {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    }
}

fn hash_chars(chars: &[char]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    chars.hash(&mut h);
    h.finish()
}

/// Every variant of `word` with up to `budget` characters deleted (the word included).
fn deletion_variants(word: &[char], budget: usize) -> HashSet<Vec<char>> {
    let mut all: HashSet<Vec<char>> = HashSet::new();
    all.insert(word.to_vec());
    let mut frontier = vec![word.to_vec()];
    for _ in 0..budget {
        let mut next = Vec::new();
        for w in &frontier {
            if w.len() <= 1 {
                continue;
            }
            for i in 0..w.len() {
                let mut v = w.clone();
                v.remove(i);
                if all.insert(v.clone()) {
                    next.push(v);
                }
            }
        }
        frontier = next;
    }
    all
}

impl MemberIndex {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An index of these members.
    pub fn build(members: impl IntoIterator<Item = Member>) -> Self {
        let mut index = Self::new();
        for m in members {
            index.upsert(m);
        }
        index
    }

    /// How many members are indexed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no member is indexed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The indexed member with this id.
    #[must_use]
    pub fn get(&self, id: Uuid) -> Option<&Member> {
        let slot = *self.by_id.get(&id)?;
        self.doc(slot).map(|d| &d.member)
    }

    fn doc(&self, slot: Slot) -> Option<&Doc> {
        self.docs.get(slot as usize).and_then(Option::as_ref)
    }

    /// Adds a member, or replaces the indexed one with the same id.
    pub fn upsert(&mut self, member: Member) {
        let slot = match self.by_id.get(&member.id) {
            Some(&slot) => {
                self.unindex(slot);
                slot
            }
            None => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.docs.push(None);
                    Slot::try_from(self.docs.len() - 1).unwrap_or(Slot::MAX)
                });
                self.by_id.insert(member.id, slot);
                slot
            }
        };
        let mut terms: Vec<TermId> = Vec::new();
        let mut seen: HashSet<(TermId, Field)> = HashSet::new();
        for field in Field::ALL {
            for token in fold::index_tokens(member.field(field)) {
                let id = self.term_id(&token);
                if seen.insert((id, field)) {
                    let term = &mut self.terms[id as usize];
                    term.postings.push(Posting { slot, field });
                    if field.is_name() {
                        term.name_count += 1;
                    }
                    if field != Field::Email && term.kind == TokenKind::Word && !term.fuzzy {
                        term.fuzzy = true;
                        let budget = deletion_budget(term.chars.len());
                        for v in deletion_variants(&term.chars, budget) {
                            self.deletions.entry(hash_chars(&v)).or_default().push(id);
                        }
                    }
                    if !terms.contains(&id) {
                        terms.push(id);
                    }
                }
            }
        }
        // Names written without spaces are typed as one run across the two fields
        // (`李小龙`: family name 李, given name 小龙, either order): the pair across the
        // junction is indexed too, under the field it starts in.
        for (a, b, field) in [
            (&member.last_name, &member.first_name, Field::LastName),
            (&member.first_name, &member.last_name, Field::FirstName),
        ] {
            let end = fold::fold(a).trim_end().chars().last();
            let start = fold::fold(b).trim_start().chars().next();
            if let (Some(x), Some(y)) = (end, start)
                && fold::is_ideographic(x)
                && fold::is_ideographic(y)
            {
                let token = Token {
                    text: [x, y].iter().collect(),
                    kind: TokenKind::Ideographic,
                    origin: Vec::new(),
                };
                let id = self.term_id(&token);
                if seen.insert((id, field)) {
                    let term = &mut self.terms[id as usize];
                    term.postings.push(Posting { slot, field });
                    term.name_count += 1;
                    if !terms.contains(&id) {
                        terms.push(id);
                    }
                }
            }
        }
        self.docs[slot as usize] = Some(Doc { member, terms });
    }

    /// Removes a member; whether they were indexed.
    pub fn remove(&mut self, id: Uuid) -> bool {
        let Some(slot) = self.by_id.remove(&id) else {
            return false;
        };
        self.unindex(slot);
        self.docs[slot as usize] = None;
        self.free.push(slot);
        true
    }

    fn unindex(&mut self, slot: Slot) {
        let Some(doc) = self.docs.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        for id in doc.terms {
            let term = &mut self.terms[id as usize];
            term.postings.retain(|p| {
                if p.slot == slot {
                    if p.field.is_name() {
                        term.name_count -= 1;
                    }
                    false
                } else {
                    true
                }
            });
        }
    }

    fn term_id(&mut self, token: &Token) -> TermId {
        if let Some(&id) = self.dictionary.get(token.text.as_str()) {
            return id;
        }
        let id = TermId::try_from(self.terms.len()).unwrap_or(TermId::MAX);
        self.terms.push(Term {
            text: token.text.clone().into_boxed_str(),
            chars: token.text.chars().collect(),
            kind: token.kind,
            postings: Vec::new(),
            name_count: 0,
            fuzzy: false,
        });
        self.dictionary
            .insert(token.text.clone().into_boxed_str(), id);
        id
    }

    fn visible(&self, posting: Posting, request: &SearchRequest<'_>) -> bool {
        request.visible_fields.contains(posting.field)
            && (!request.apply_member_choices
                || self
                    .doc(posting.slot)
                    .is_some_and(|d| !d.member.hidden.contains(posting.field)))
    }

    /// Indexed words within `budget(query len, term len)` typos of `word` (at least one).
    fn typo_candidates(
        &self,
        word: &[char],
        query_deletions: usize,
        budget: impl Fn(usize, usize) -> usize,
    ) -> Vec<(TermId, usize)> {
        let mut seen: HashSet<TermId> = HashSet::new();
        let mut out = Vec::new();
        for v in deletion_variants(word, query_deletions) {
            let Some(ids) = self.deletions.get(&hash_chars(&v)) else {
                continue;
            };
            for &id in ids {
                if !seen.insert(id) {
                    continue;
                }
                let term = &self.terms[id as usize];
                let max = budget(word.len(), term.chars.len());
                if max == 0 {
                    continue;
                }
                if let Some(d) = osa_bounded(word, &term.chars, max)
                    && d > 0
                {
                    out.push((id, d));
                }
            }
        }
        out
    }

    /// The indexed words a query word matches, with how.
    fn candidates(&self, word: &Token) -> Vec<(TermId, Quality)> {
        let mut out = Vec::new();
        if let Some(&id) = self.dictionary.get(word.text.as_str()) {
            out.push((id, Quality::Exact));
        }
        if word.kind == TokenKind::Ideographic {
            return out;
        }
        let range = self
            .dictionary
            .range::<str, _>((Bound::Excluded(word.text.as_str()), Bound::Unbounded));
        for (text, &id) in range {
            if !text.starts_with(word.text.as_str()) {
                break;
            }
            if self.terms[id as usize].kind == TokenKind::Word {
                out.push((id, Quality::Prefix));
            }
        }
        let chars: Vec<char> = word.text.chars().collect();
        let query_deletions = match chars.len() {
            0..=2 => 0,
            3..=5 => 1,
            _ => 2,
        };
        for (id, d) in self.typo_candidates(&chars, query_deletions, |q, t| allowed_typos(q.max(t)))
        {
            if out.iter().any(|&(o, _)| o == id) {
                continue;
            }
            out.push((
                id,
                if d == 1 {
                    Quality::OneTypo
                } else {
                    Quality::TwoTypos
                },
            ));
        }
        out
    }

    /// The closest visible indexed word to `word` (distance, then commonness, then text).
    fn suggest(&self, word: &Token, request: &SearchRequest<'_>) -> Option<Suggestion> {
        if word.kind == TokenKind::Ideographic {
            return None;
        }
        let chars: Vec<char> = word.text.chars().collect();
        let budget = match chars.len() {
            0..=2 => return None,
            3..=4 => 1,
            _ => 2,
        };
        self.typo_candidates(&chars, budget, |_, _| budget)
            .into_iter()
            .filter(|&(id, _)| {
                self.terms[id as usize]
                    .postings
                    .iter()
                    .any(|&p| self.visible(p, request))
            })
            .min_by(|&(a, da), &(b, db)| {
                let (ta, tb) = (&self.terms[a as usize], &self.terms[b as usize]);
                da.cmp(&db)
                    .then(tb.name_count.cmp(&ta.name_count))
                    .then(ta.text.cmp(&tb.text))
            })
            .map(|(id, distance)| Suggestion {
                word: word.text.clone(),
                suggestion: self.terms[id as usize].text.to_string(),
                distance,
            })
    }

    /// Searches the index.
    ///
    /// # Errors
    /// [`SearchError`] when the text is empty, too long or has too many words.
    pub fn search(&self, request: &SearchRequest<'_>) -> Result<SearchResults, SearchError> {
        if request.text.chars().count() > MAX_CHARS {
            return Err(SearchError::TooLong);
        }
        let words = query_words(request.text);
        if words.is_empty() {
            return Err(SearchError::Empty);
        }
        if words.len() > MAX_WORDS {
            return Err(SearchError::TooManyWords);
        }

        // Per query word: its candidate words, and each member's best match.
        let mut matched: HashMap<TermId, (Quality, usize)> = HashMap::new();
        let mut suggestions = Vec::new();
        // Per member: score, commonness, and the words matched (a hash of their ids).
        let mut acc: Option<HashMap<Slot, (u32, u32, u64)>> = None;
        for word in &words {
            let candidates = self.candidates(word);
            let word_len = word.text.chars().count();
            let mut best: HashMap<Slot, (u32, u32, TermId)> = HashMap::new();
            let mut direct = false;
            for &(id, quality) in &candidates {
                let term = &self.terms[id as usize];
                let mut any = false;
                for &p in &term.postings {
                    if let Some(a) = &acc
                        && !a.contains_key(&p.slot)
                    {
                        continue;
                    }
                    if !self.visible(p, request) {
                        continue;
                    }
                    any = true;
                    let score = 10 * quality as u32 + p.field.weight();
                    let value = (score, term.name_count, id);
                    match best.entry(p.slot) {
                        Entry::Occupied(mut e) => {
                            let (s0, c0, t0) = *e.get();
                            // Ties go to the smaller word, whatever the build order.
                            let better = (score, term.name_count)
                                .cmp(&(s0, c0))
                                .then_with(|| self.terms[t0 as usize].text.cmp(&term.text));
                            if better.is_gt() {
                                e.insert(value);
                            }
                        }
                        Entry::Vacant(e) => {
                            e.insert(value);
                        }
                    }
                }
                if any {
                    direct |= quality >= Quality::Prefix;
                    if term.kind == TokenKind::Ideographic {
                        // Highlights show a matched pair by its characters (a pair
                        // across the two name fields is in neither field's text).
                        for c in term.chars.iter() {
                            if let Some(&u) = self.dictionary.get(c.to_string().as_str()) {
                                matched.insert(u, (Quality::Exact, 1));
                            }
                        }
                    }
                    let e = matched.entry(id).or_insert((quality, word_len));
                    if quality > e.0 {
                        *e = (quality, word_len);
                    }
                }
            }
            if !direct && let Some(s) = self.suggest(word, request) {
                suggestions.push(s);
            }
            acc = Some(match acc {
                None => best
                    .into_iter()
                    .map(|(slot, (s, c, t))| (slot, (s, c, u64::from(t) + 1)))
                    .collect(),
                Some(a) => best
                    .into_iter()
                    .filter_map(|(slot, (s, c, t))| {
                        a.get(&slot).map(|&(s0, c0, g0)| {
                            let group = g0.wrapping_mul(0x0000_0100_0000_01B3) ^ (u64::from(t) + 1);
                            (slot, (s0 + s, c0 + c, group))
                        })
                    })
                    .collect(),
            });
        }
        let acc = acc.unwrap_or_default();

        let mut ranked: Vec<Ranked> = acc
            .into_iter()
            .filter_map(|(slot, (score, commonness, group))| {
                self.doc(slot).map(|d| Ranked {
                    slot,
                    score,
                    commonness,
                    id: d.member.id,
                    group,
                    turn: 0,
                })
            })
            .collect();
        ranked.sort_unstable_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then(b.commonness.cmp(&a.commonness))
                .then(a.id.cmp(&b.id))
        });
        // Among equal scores, distinct matched names take turns (the first member of each
        // name, most common name first, then the second of each, …): a type-ahead `jos`
        // shows José, Joseph and Josefina on the first page, not twenty Josés.
        let mut turns: HashMap<(u32, u64), u32> = HashMap::new();
        for r in &mut ranked {
            let turn = turns.entry((r.score, r.group)).or_insert(0);
            *turn += 1;
            r.turn = *turn;
        }
        ranked.sort_by(|a, b| b.score.cmp(&a.score).then(a.turn.cmp(&b.turn)));

        let facets = self.facets(ranked.iter().map(|r| r.slot), request);
        let hits = ranked
            .iter()
            .take(request.limit)
            .map(|r| Hit {
                id: r.id,
                score: r.score,
                commonness: r.commonness,
                matches: self.highlights(r.slot, &matched, request),
            })
            .collect();
        let did_you_mean = (!suggestions.is_empty()).then(|| {
            words
                .iter()
                .map(|w| {
                    suggestions
                        .iter()
                        .find(|s| s.word == w.text)
                        .map_or(w.text.as_str(), |s| s.suggestion.as_str())
                })
                .collect::<Vec<_>>()
                .join(" ")
        });
        Ok(SearchResults {
            total: ranked.len(),
            hits,
            suggestions,
            did_you_mean,
            facets,
        })
    }

    fn highlights(
        &self,
        slot: Slot,
        matched: &HashMap<TermId, (Quality, usize)>,
        request: &SearchRequest<'_>,
    ) -> Vec<FieldMatch> {
        let Some(doc) = self.doc(slot) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for field in Field::ALL {
            if !self.visible(Posting { slot, field }, request) {
                continue;
            }
            let mut ranges: Vec<(usize, usize)> = Vec::new();
            for token in fold::index_tokens(doc.member.field(field)) {
                let Some(&(quality, len)) = self
                    .dictionary
                    .get(token.text.as_str())
                    .and_then(|id| matched.get(id))
                else {
                    continue;
                };
                ranges.push(if quality == Quality::Prefix {
                    token.original_range(len)
                } else {
                    token.full_range()
                });
            }
            if ranges.is_empty() {
                continue;
            }
            ranges.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
            for (s, e) in ranges {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            out.push(FieldMatch {
                field,
                ranges: merged,
            });
        }
        out
    }

    fn facets(&self, slots: impl Iterator<Item = Slot>, request: &SearchRequest<'_>) -> Facets {
        let mut role: HashMap<&str, usize> = HashMap::new();
        let mut status: HashMap<&str, usize> = HashMap::new();
        let mut committee: HashMap<&str, usize> = HashMap::new();
        for slot in slots {
            let Some(doc) = self.doc(slot) else { continue };
            *role.entry(&doc.member.role).or_default() += 1;
            *status.entry(&doc.member.status).or_default() += 1;
            if let Some(c) = &doc.member.committee
                && self.visible(
                    Posting {
                        slot,
                        field: Field::Committee,
                    },
                    request,
                )
            {
                *committee.entry(c).or_default() += 1;
            }
        }
        let sorted = |m: HashMap<&str, usize>| {
            let mut v: FacetCounts = m.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
            v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        };
        Facets {
            role: sorted(role),
            status: sorted(status),
            committee: sorted(committee),
        }
    }

    /// A rough count of the heap bytes the index uses (for the ≤ 1 KiB per member
    /// target): documents, dictionary, postings and the typo neighbourhood.
    #[must_use]
    pub fn approx_heap_bytes(&self) -> usize {
        let docs: usize = self
            .docs
            .iter()
            .flatten()
            .map(|d| {
                let m = &d.member;
                std::mem::size_of::<Doc>()
                    + m.first_name.capacity()
                    + m.last_name.capacity()
                    + m.email.capacity()
                    + m.committee.as_ref().map_or(0, String::capacity)
                    + m.role.capacity()
                    + m.status.capacity()
                    + d.terms.capacity() * 4
            })
            .sum();
        let terms: usize = self
            .terms
            .iter()
            .map(|t| {
                std::mem::size_of::<Term>()
                    + 2 * t.text.len()
                    + t.chars.len() * 4
                    + t.postings.capacity() * std::mem::size_of::<Posting>()
                    + 48
            })
            .sum();
        let deletions: usize = self
            .deletions
            .values()
            .map(|v| 8 + 24 + 8 + v.capacity() * 4)
            .sum();
        docs + terms + deletions + self.by_id.len() * (16 + 4 + 8)
    }
}
