//! Relevance on a seeded synthetic directory (2,000 and 20,000 members, names from six
//! locales; the set is `search-relevance`, shared with `cargo xtask bench-search`),
//! compared with a brute-force Damerau-Levenshtein ranking of every member, and the
//! search rate at 20,000 members.
//!
//! Run with `--no-capture` to see the table.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::Instant;

use member_search::{MemberIndex, SearchRequest};
use search_relevance::{Kind, Reference, Rng, Tallies, directory, first_place, queries, success};

fn evaluate(size: usize) -> Tallies {
    let people = directory(size, 0x5EED_0000 + size as u64);
    let index = MemberIndex::build(people.iter().map(|p| p.member.clone()));
    let reference = Reference::new(&people);
    let qs = queries(&people, 0xC0FFEE + size as u64);
    let mut tallies = Tallies::default();
    for q in &qs {
        let req = SearchRequest {
            limit: 20,
            ..SearchRequest::new(&q.text)
        };
        let found: Vec<usize> = index
            .search(&req)
            .unwrap()
            .hits
            .iter()
            .map(|h| (h.id.as_u128() - 1) as usize)
            .collect();
        let refd = reference.rank(&q.text, 20);
        tallies.record(
            q.kind,
            success(&people, q, &found),
            success(&people, q, &refd),
            first_place(&people, q, &found),
            first_place(&people, q, &refd),
        );
        if std::env::var_os("SEARCH_MISSES").is_some() && !success(&people, q, &found) {
            let t = &people[q.target].member;
            let names: Vec<String> = found
                .iter()
                .take(5)
                .map(|&i| {
                    format!(
                        "{} {}",
                        people[i].member.first_name, people[i].member.last_name
                    )
                })
                .collect();
            eprintln!(
                "miss {:?} {:?} (want {} {}) got {:?}",
                q.kind, q.text, t.first_name, t.last_name, names
            );
        }
    }
    eprintln!(
        "\n{size} members, {} queries:\n{}",
        qs.len(),
        tallies.table()
    );
    tallies
}

#[test]
fn relevance_at_2000_members() {
    let t = evaluate(2_000);
    assert!(t.rate(Kind::is_typo) >= 95.0, "one typo per word, top 3");
    assert!((t.rate(|k| matches!(k, Kind::Exact | Kind::Email)) - 100.0).abs() < f64::EPSILON);
}

#[test]
fn relevance_at_20000_members() {
    let t = evaluate(20_000);
    assert!(t.rate(Kind::is_typo) >= 95.0, "one typo per word, top 3");
    assert!(
        t.rate(|k| matches!(k, Kind::TypeAheadFull | Kind::TypeAheadWord)) >= 90.0,
        "type-ahead, top 20"
    );
    assert!((t.rate(|k| matches!(k, Kind::Exact | Kind::Email)) - 100.0).abs() < f64::EPSILON);
    assert!(t.rate(|k| matches!(k, Kind::NoDiacritics | Kind::Cjk)) >= 95.0);
}

#[test]
fn search_rate_at_20000_members() {
    let people = directory(20_000, 0x5EED_0000 + 20_000);
    let started = Instant::now();
    let index = MemberIndex::build(people.iter().map(|p| p.member.clone()));
    let built = started.elapsed();
    let qs = queries(&people, 0xC0FFEE + 20_000);
    let started = Instant::now();
    let mut found = 0usize;
    let rounds = 3;
    for _ in 0..rounds {
        for q in &qs {
            found += index
                .search(&SearchRequest::new(&q.text))
                .unwrap()
                .hits
                .len();
        }
    }
    let elapsed = started.elapsed();
    let per_s = (rounds * qs.len()) as f64 / elapsed.as_secs_f64();
    eprintln!(
        "\n20,000 members: built in {:.0} ms, {:.0} queries/s on one core ({} queries, {found} hits), ~{} bytes per member",
        built.as_secs_f64() * 1000.0,
        per_s,
        rounds * qs.len(),
        index.approx_heap_bytes() / index.len()
    );
    assert!(found > 0);
    // The broadest queries: one or two letters match thousands of members.
    let broad = [
        "a",
        "m",
        "jo",
        "ma",
        "н",
        "ng",
        "li",
        "smith",
        "maria garcia",
    ];
    let started = Instant::now();
    for q in broad {
        found += index.search(&SearchRequest::new(q)).unwrap().total;
    }
    eprintln!(
        "broad queries ({}): {:.0} queries/s, {found} hits in all",
        broad.join(", "),
        broad.len() as f64 / started.elapsed().as_secs_f64()
    );
    // The memory target for the search structures: ≤ 1 KiB per member.
    assert!(index.approx_heap_bytes() / index.len() <= 1024);
}

#[test]
fn incremental_updates_answer_like_a_fresh_build() {
    let mut people = directory(2_000, 7);
    let mut rng = Rng(11);
    let mut index = MemberIndex::build(people.iter().map(|p| p.member.clone()));
    let donors = directory(500, 8);
    let mut removed = std::collections::HashSet::new();
    for step in 0..1_500 {
        let i = rng.below(people.len());
        if step % 3 == 0 {
            index.remove(people[i].member.id);
            removed.insert(i);
        } else {
            // A rename, a new e-mail, committee or visibility: someone else's details.
            let d = &donors[rng.below(donors.len())].member;
            let m = &mut people[i].member;
            m.first_name.clone_from(&d.first_name);
            m.last_name.clone_from(&d.last_name);
            m.email.clone_from(&d.email);
            m.committee.clone_from(&d.committee);
            m.hidden = if step % 5 == 0 {
                member_search::FieldSet::of(&[member_search::Field::Email])
            } else {
                member_search::FieldSet::NONE
            };
            index.upsert(m.clone());
            removed.remove(&i);
        }
    }
    let fresh = MemberIndex::build(
        people
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed.contains(i))
            .map(|(_, p)| p.member.clone()),
    );
    assert_eq!(index.len(), fresh.len());
    for q in queries(&people, 13) {
        let req = SearchRequest::new(&q.text);
        let (a, b) = (index.search(&req).unwrap(), fresh.search(&req).unwrap());
        assert_eq!(a.total, b.total, "{}", q.text);
        assert_eq!(a.hits, b.hits, "{}", q.text);
        assert_eq!(a.facets, b.facets, "{}", q.text);
        assert_eq!(a.did_you_mean, b.did_you_mean, "{}", q.text);
    }
}
