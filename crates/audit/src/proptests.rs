//! Property tests: random chains with one random tampering are caught exactly.

use crate::chain::ChainBuilder;
use crate::digest::{Digest, verify_against_digests};
use crate::event::AuditEvent;
use crate::hash::Hash32;
use crate::scope::ChainId;
use crate::testkit::{FakeSigner, ORG, T0, chain_of};
use crate::verify::{BreakKind, verify_chain};
use proptest::prelude::*;
use serde_json::json;

/// One tampering of a stored chain, at a 0-based index.
#[derive(Debug, Clone)]
enum Mutation {
    /// Edit one field of the event without rehashing.
    Edit { index: usize, field: u8 },
    /// Delete the event.
    Delete { index: usize },
    /// Swap the event with the next one.
    Swap { index: usize },
    /// Point the event to another predecessor and rehash it.
    Relink { index: usize },
    /// Insert a copy of the event right after it.
    Duplicate { index: usize },
}

fn chain_and_mutation() -> impl Strategy<Value = (u64, Mutation)> {
    (2u64..24).prop_flat_map(|len| {
        let n = usize::try_from(len).unwrap_or(2);
        let mutation = prop_oneof![
            (0..n, 0u8..6).prop_map(|(index, field)| Mutation::Edit { index, field }),
            (0..n - 1).prop_map(|index| Mutation::Delete { index }),
            (0..n - 1).prop_map(|index| Mutation::Swap { index }),
            (0..n).prop_map(|index| Mutation::Relink { index }),
            (0..n).prop_map(|index| Mutation::Duplicate { index }),
        ];
        (Just(len), mutation)
    })
}

/// Applies `mutation`; returns the 1-based stream position of the first altered
/// element, where verification must report the break.
fn apply(events: &mut Vec<AuditEvent>, mutation: &Mutation) -> u64 {
    let index = match *mutation {
        Mutation::Edit { index, field } => {
            let body = &mut events[index].body;
            match field {
                0 => body.entity_id.push('!'),
                1 => body.new_value = Some(json!({"forged": true})),
                2 => body.actor = crate::Actor::System,
                3 => body.occurred_at += time::Duration::microseconds(1),
                4 => body.ip = None,
                _ => events[index].seq += 1000,
            }
            index
        }
        Mutation::Delete { index } => {
            events.remove(index);
            index
        }
        Mutation::Swap { index } => {
            events.swap(index, index + 1);
            index
        }
        Mutation::Relink { index } => {
            events[index].prev_hash = Hash32::of(b"elsewhere");
            events[index].hash = events[index].compute_hash();
            index
        }
        Mutation::Duplicate { index } => {
            events.insert(index + 1, events[index].clone());
            index + 1
        }
    };
    index as u64 + 1
}

proptest! {
    #[test]
    fn reports_exactly_the_mutated_position((len, mutation) in chain_and_mutation()) {
        let mut events = chain_of(ORG, len);
        let position = apply(&mut events, &mutation);
        let report = verify_chain(&events, ChainId::Org(ORG));
        let broken = report.first_break.expect("mutation detected");
        prop_assert_eq!(broken.position(), position, "{:?} -> {:?}", mutation, broken);
        prop_assert_eq!(report.checked, position - 1);
        let expected_event = events[usize::try_from(position - 1).unwrap_or_default()].id();
        prop_assert_eq!(broken.event_id, Some(expected_event));
    }

    #[test]
    fn rewrites_and_truncations_are_caught_by_digests(
        len in 3u64..24,
        anchor_frac in 0.0f64..1.0,
        cut_frac in 0.0f64..1.0,
        truncate in any::<bool>(),
    ) {
        let signer = FakeSigner::new(b"secret");
        let events = chain_of(ORG, len);
        // Digests signed at a middle head and at the final head.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let middle = 1 + (anchor_frac * (len - 1) as f64) as u64;
        let d1 = Digest::new(T0, vec![events[usize::try_from(middle - 1).unwrap_or_default()].head()], None)
            .sign(&signer);
        let d2 = Digest::new(T0, vec![events[events.len() - 1].head()], Some(&d1.digest))
            .sign(&signer);
        let digests = [d1, d2];
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let cut = (cut_frac * len as f64) as usize; // 0-based index of the rewrite/cut
        let expected_seq = if middle > cut as u64 { middle } else { len };

        let tampered: Vec<AuditEvent> = if truncate {
            events[..cut].to_vec()
        } else {
            // Rewrite from `cut` on, recomputing every hash.
            let mut builder = ChainBuilder::new(ChainId::Org(ORG));
            events.iter().enumerate().map(|(i, e)| {
                let mut body = e.body.clone();
                if i == cut {
                    body.entity_id = "rewritten".into();
                }
                builder.seal(body).expect("seal")
            }).collect()
        };
        prop_assert!(verify_chain(&tampered, ChainId::Org(ORG)).is_intact());
        let report = verify_against_digests(&tampered, ChainId::Org(ORG), &digests, &signer)
            .expect("digests are valid");
        let broken = report.first_break.expect("tampering detected");
        prop_assert_eq!(broken.seq, expected_seq);
        if truncate {
            let is_truncated = matches!(broken.kind, BreakKind::Truncated { .. });
            prop_assert!(is_truncated, "{:?}", broken);
        } else {
            let is_anchor_mismatch = matches!(broken.kind, BreakKind::AnchorMismatch { .. });
            prop_assert!(is_anchor_mismatch, "{:?}", broken);
        }
    }
}

/// People of the sealed-chain fixture: actors and members.
const PEOPLE: [uuid::Uuid; 4] = [
    uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0a01),
    uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0a02),
    uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0a03),
    uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0a04),
];

/// A chain of member events, `(actor, member)` index pairs into [`PEOPLE`], with their
/// personal fields sealed (the test stand-in for the AEAD).
fn sealed_chain(pairs: &[(usize, usize)]) -> Vec<AuditEvent> {
    use crate::personal::tests::{fake_seal, member_event};
    let mut builder = ChainBuilder::new(ChainId::Org(ORG));
    pairs
        .iter()
        .map(|&(actor, member)| {
            let new = member_event(crate::Actor::User(PEOPLE[actor]), PEOPLE[member]);
            let parts = fake_seal(&new);
            builder.seal_with_parts(new, parts).expect("seal")
        })
        .collect()
}

proptest! {
    /// Erasing any set of subjects (opened events get `[erased]`, closed ones stay
    /// empty) never breaks the chain; flipping one ciphertext bit breaks it exactly there.
    #[test]
    fn erasure_keeps_sealed_chains_intact_and_ciphertext_is_covered(
        pairs in proptest::collection::vec((0usize..4, 0usize..4), 1..16),
        erased in proptest::collection::vec(any::<bool>(), 4),
        closed in any::<bool>(),
        tamper in (any::<proptest::sample::Index>(), any::<proptest::sample::Index>(), 0u8..8),
    ) {
        use crate::personal::{DataSubject, ERASED};
        let chain = ChainId::Org(ORG);
        let mut events = sealed_chain(&pairs);
        if closed {
            events = events.into_iter().map(AuditEvent::closed).collect();
        }
        let mut any_erased = false;
        for event in &mut events {
            for i in 0..event.sealed.len() {
                let DataSubject::User(who) = event.sealed[i].subject else { continue };
                let index = PEOPLE.iter().position(|p| *p == who).unwrap_or_default();
                if erased[index] {
                    any_erased = true;
                    event.erase_part(i).expect("erase");
                    prop_assert!(event.is_sealed(event.sealed[i].fields[0]));
                }
            }
        }
        let shown = serde_json::to_string(&events).unwrap_or_default();
        prop_assert_eq!(shown.contains(ERASED), any_erased);
        prop_assert!(verify_chain(&events, chain).is_intact());

        // Every event has a part: the member's values at least.
        let (at, part, bit) = tamper;
        let index = at.index(events.len());
        let part = part.index(events[index].sealed.len());
        let byte = events[index].sealed[part].ciphertext.len() / 2;
        events[index].sealed[part].ciphertext[byte] ^= 1 << bit;
        let broken = verify_chain(&events, chain).first_break.expect("tampering detected");
        prop_assert_eq!(broken.position(), index as u64 + 1);
        prop_assert_eq!(broken.event_id, Some(events[index].id()));
    }
}
