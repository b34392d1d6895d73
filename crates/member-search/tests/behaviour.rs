//! The index's behaviours one by one: typo kinds, prefix order, scripts, highlights,
//! suggestions, facets, privacy and incremental updates.

use member_search::{Field, FieldSet, Member, MemberIndex, Quality, SearchError, SearchRequest};
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn member(n: u128, first: &str, last: &str) -> Member {
    let email = format!(
        "{}.{}@example.org",
        first.to_lowercase(),
        last.to_lowercase()
    );
    Member::new(id(n), first, last, &email)
}

fn ids(index: &MemberIndex, text: &str) -> Vec<u128> {
    index
        .search(&SearchRequest::new(text))
        .expect("valid query")
        .hits
        .iter()
        .map(|h| h.id.as_u128())
        .collect()
}

fn directory() -> MemberIndex {
    MemberIndex::build([
        member(1, "James", "Jones"),
        member(2, "Ross", "Geller"),
        member(3, "Gang", "Wang"),
        member(4, "John", "Adams"),
        member(5, "Mary", "Johnson"),
        member(6, "Peter", "Johnson"),
        member(7, "Alexandra", "Konstantinopoulos"),
        member(8, "Nguyễn", "Thị Thủy"),
        member(9, "小龙", "李"),
        member(10, "Дмитрий", "Иванов"),
        member(11, "أحمد", "الحسن"),
        member(12, "José", "Martínez"),
    ])
}

#[test]
fn every_typo_kind_finds_the_person() {
    let index = directory();
    for q in ["Jmaes Ojnes", "Jamse Jnoes", "Jaems Jonse"] {
        assert_eq!(ids(&index, q).first(), Some(&1), "transpositions: {q}");
    }
    assert_eq!(
        ids(&index, "Rsos").first(),
        Some(&2),
        "transposition, 4 letters"
    );
    assert_eq!(ids(&index, "Jamez Jonas").first(), Some(&1), "substitution");
    assert_eq!(ids(&index, "Jams Joes").first(), Some(&1), "deletion");
    assert_eq!(ids(&index, "Jaames Joness").first(), Some(&1), "insertion");
    assert_eq!(
        ids(&index, "Gng Wan").first(),
        Some(&3),
        "deletion to 3 letters"
    );
    assert_eq!(
        ids(&index, "Konstantinopuolos").first(),
        Some(&7),
        "long word"
    );
    assert_eq!(
        ids(&index, "Kosntantinopuolos").first(),
        Some(&7),
        "two typos in 8+ letters"
    );
    assert!(ids(&index, "Rxxs").is_empty(), "two typos in 4 letters");
}

#[test]
fn exact_beats_prefix_beats_typo_and_names_beat_email() {
    let index = directory();
    // `john`: John (exact) first, then the Johnsons (prefix), never alphabetical.
    assert_eq!(ids(&index, "john"), [4, 5, 6]);
    // `johnso`: prefix of both Johnsons (equal: by id), `john.adams@` does not match.
    assert_eq!(ids(&index, "johnso"), [5, 6]);
    let found = index.search(&SearchRequest::new("joh")).expect("valid");
    assert!(
        found
            .hits
            .iter()
            .all(|h| h.matches[0].field != Field::Email)
    );
    assert!(Quality::Exact > Quality::Prefix && Quality::Prefix > Quality::OneTypo);
}

#[test]
fn common_names_first_and_distinct_names_take_turns() {
    let mut index = directory();
    for n in 20..25 {
        index.upsert(member(n, "Jonas", &format!("Other{n}")));
    }
    // `jon`: Jonas (5 members) and Jones (1) are both prefixes: the more common name
    // first, then each name takes its turn (by id within a name), never alphabetical.
    // John is one typo away (a deletion): after every prefix match.
    assert_eq!(ids(&index, "jon"), [20, 1, 21, 22, 23, 24, 4]);
    // Equal quality, more common first.
    let found = index.search(&SearchRequest::new("jon")).expect("valid");
    assert!(found.hits[0].commonness > found.hits[1].commonness);
}

#[test]
fn any_script_and_folding() {
    let index = directory();
    assert_eq!(ids(&index, "nguyen thuy"), [8]);
    assert_eq!(ids(&index, "NGUYỄN"), [8]);
    assert_eq!(ids(&index, "李小龙"), [9]);
    assert_eq!(ids(&index, "小龙"), [9]);
    assert_eq!(ids(&index, "李"), [9]);
    assert_eq!(ids(&index, "小龙李"), [9], "either order");
    assert_eq!(ids(&index, "иванов"), [10]);
    assert_eq!(ids(&index, "Иваов"), [10], "Cyrillic typo");
    assert_eq!(ids(&index, "الحسن"), [11]);
    assert_eq!(ids(&index, "حسن"), [11], "without the article");
    let found = index.search(&SearchRequest::new("حسن")).expect("valid");
    assert_eq!(found.hits[0].matches[0].field, Field::LastName);
    assert_eq!(found.hits[0].matches[0].ranges, [(2, 5)]);
    assert_eq!(ids(&index, "jose martinez"), [12]);
    assert_eq!(ids(&index, "ｊｏｓｅ"), [12], "full width");
}

#[test]
fn highlights_point_into_the_original_text() {
    let index = directory();
    let found = index
        .search(&SearchRequest::new("marti jose"))
        .expect("valid");
    let hit = &found.hits[0];
    assert_eq!(hit.id, id(12));
    let by_field = |f: Field| {
        hit.matches
            .iter()
            .find(|m| m.field == f)
            .map(|m| m.ranges.clone())
    };
    assert_eq!(by_field(Field::FirstName), Some(vec![(0, 4)]));
    assert_eq!(
        by_field(Field::LastName),
        Some(vec![(0, 5)]),
        "prefix: only the typed part"
    );
    assert_eq!(by_field(Field::Email), Some(vec![(0, 4), (5, 10)]));
    let found = index.search(&SearchRequest::new("小龙")).expect("valid");
    assert_eq!(found.hits[0].matches[0].field, Field::FirstName);
    assert_eq!(found.hits[0].matches[0].ranges, [(0, 2)]);
    let found = index.search(&SearchRequest::new("李小龙")).expect("valid");
    let fields: Vec<_> = found.hits[0]
        .matches
        .iter()
        .map(|m| (m.field, m.ranges.clone()))
        .collect();
    assert_eq!(
        fields[..2],
        [
            (Field::FirstName, vec![(0, 2)]),
            (Field::LastName, vec![(0, 1)])
        ]
    );
}

#[test]
fn suggests_the_closest_word() {
    let index = directory();
    let found = index
        .search(&SearchRequest::new("james jnoes"))
        .expect("valid");
    assert_eq!(found.suggestions.len(), 1);
    assert_eq!(found.suggestions[0].suggestion, "jones");
    assert_eq!(found.did_you_mean.as_deref(), Some("james jones"));
    // Two typos in a short word: nothing found, still a suggestion.
    let found = index.search(&SearchRequest::new("gelelr")).expect("valid");
    assert_eq!(found.did_you_mean.as_deref(), Some("geller"));
    let found = index.search(&SearchRequest::new("james")).expect("valid");
    assert!(found.suggestions.is_empty() && found.did_you_mean.is_none());
}

#[test]
fn facets_count_every_hit() {
    let mut index = MemberIndex::new();
    for n in 0..30u128 {
        let mut m = member(n, "Anna", &format!("Last{n}"));
        m.role = if n % 3 == 0 { "admin" } else { "member" }.to_owned();
        m.status = if n % 10 == 0 { "invited" } else { "active" }.to_owned();
        m.committee = (n % 2 == 0).then(|| "Book Fair".to_owned());
        index.upsert(m);
    }
    let mut req = SearchRequest::new("anna");
    req.limit = 5;
    let found = index.search(&req).expect("valid");
    assert_eq!(found.total, 30);
    assert_eq!(found.hits.len(), 5);
    assert_eq!(
        found.facets.role,
        [("member".to_owned(), 20), ("admin".to_owned(), 10)]
    );
    assert_eq!(
        found.facets.status,
        [("active".to_owned(), 27), ("invited".to_owned(), 3)]
    );
    assert_eq!(found.facets.committee, [("Book Fair".to_owned(), 15)]);
    assert_eq!(
        ids(&index, "book fair").len(),
        15,
        "committee is searchable"
    );
    req.visible_fields = FieldSet::ALL.without(Field::Committee);
    assert!(
        index
            .search(&req)
            .expect("valid")
            .facets
            .committee
            .is_empty()
    );
}

#[test]
fn hidden_fields_neither_match_nor_show() {
    let mut index = directory();
    let mut m = member(30, "Priya", "Raman");
    m.email = "secret.handle@example.org".to_owned();
    m.hidden = FieldSet::of(&[Field::Email]);
    index.upsert(m);
    // Another member's search: the hidden e-mail neither matches nor shows.
    assert!(ids(&index, "secret").is_empty());
    let found = index.search(&SearchRequest::new("priya")).expect("valid");
    assert!(
        found.hits[0]
            .matches
            .iter()
            .all(|m| m.field != Field::Email)
    );
    // Nor does a suggestion leak it.
    let found = index.search(&SearchRequest::new("secrte")).expect("valid");
    assert!(found.suggestions.is_empty());
    // An admin reading the record sees it.
    let mut admin = SearchRequest::new("secret");
    admin.apply_member_choices = false;
    assert_eq!(index.search(&admin).expect("valid").hits[0].id, id(30));
    // The org's policy hides e-mail from this audience: nobody's e-mail matches.
    let mut policy = SearchRequest::new("james.jones");
    assert_eq!(index.search(&policy).expect("valid").hits[0].id, id(1));
    policy.visible_fields = FieldSet::of(&[Field::FirstName, Field::LastName]);
    policy.text = "example";
    assert_eq!(index.search(&policy).expect("valid").total, 0);
}

#[test]
fn upsert_and_remove_keep_the_index_current() {
    let mut index = directory();
    assert_eq!(index.len(), 12);
    let mut renamed = member(1, "James", "Smith");
    renamed.email = "js@example.org".to_owned();
    index.upsert(renamed);
    assert_eq!(index.len(), 12);
    assert!(ids(&index, "jones").is_empty());
    assert_eq!(ids(&index, "smith"), [1]);
    assert!(index.remove(id(1)));
    assert!(!index.remove(id(1)));
    assert!(ids(&index, "smith").is_empty());
    index.upsert(member(40, "Sam", "Smith"));
    assert_eq!(ids(&index, "smith"), [40]);
    assert_eq!(
        index.get(id(40)).map(|m| m.first_name.as_str()),
        Some("Sam")
    );
    assert_eq!(index.len(), 12);
}

#[test]
fn refuses_unsearchable_text() {
    let index = directory();
    assert_eq!(
        index.search(&SearchRequest::new(" -- ")),
        Err(SearchError::Empty)
    );
    let long = "a".repeat(101);
    assert_eq!(
        index.search(&SearchRequest::new(&long)),
        Err(SearchError::TooLong)
    );
    assert_eq!(
        index.search(&SearchRequest::new("a b c d e f g h i j k l m")),
        Err(SearchError::TooManyWords)
    );
}
