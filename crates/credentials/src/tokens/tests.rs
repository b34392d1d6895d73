use super::*;
use biscuit_auth::error::{FailedBlockCheck, FailedCheck, Logic};
use time::macros::datetime;

/// Issued expiry; the token keeps whole seconds, i.e. `2030-01-01 00:00:00`.
const EXP: OffsetDateTime = datetime!(2030-01-01 00:00:00.750 UTC);
const EXP_SECONDS: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);
const BEFORE: OffsetDateTime = datetime!(2029-06-01 12:00 UTC);
const AFTER: OffsetDateTime = datetime!(2031-01-01 00:00 UTC);

const URL_SAFE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// An issuer with a fresh key and the default limits.
fn issuer() -> TokenIssuer {
    TokenIssuer::new(Arc::new(SigningKey::generate()))
}

fn id() -> Uuid {
    Uuid::now_v7()
}

fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

fn parse(issuer: &TokenIssuer, token: &str) -> Biscuit {
    Biscuit::from_base64(token, issuer.public).expect("parse")
}

fn date(t: OffsetDateTime) -> Term {
    Term::Date(u64::try_from(t.unix_timestamp()).expect("after 1970"))
}

#[test]
fn session_round_trip() {
    let issuer = issuer();
    let (user_id, session_id) = (id(), id());
    let issued = issuer
        .issue_session(user_id, session_id, EXP, false)
        .expect("issue");
    assert_eq!(issued.expires_at, EXP_SECONDS);
    assert_eq!(issued.revocation_ids, vec![issued.revocation_id.clone()]);

    let verified = issuer.verify(&issued.token, BEFORE).expect("verify");
    assert_eq!(
        verified.principal,
        Principal::Session {
            user_id,
            session_id,
            second_factor: false,
        }
    );
    assert_eq!(verified.expires_at, Some(EXP_SECONDS));
    assert_eq!(verified.revocation_ids, issued.revocation_ids);
    assert_eq!(
        verified.authority_revocation_id(),
        Some(issued.revocation_id.as_str())
    );

    // Sessions are not org-bound.
    let for_org = issuer
        .verify_for_org(&issued.token, BEFORE, Some(id()))
        .expect("verify for an org");
    assert_eq!(for_org, verified);
}

#[test]
fn session_authority_block_layout() {
    let issuer = issuer();
    let (user_id, session_id) = (id(), id());
    let issued = issuer
        .issue_session(user_id, session_id, EXP, false)
        .expect("issue");
    let token = parse(&issuer, &issued.token);
    assert_eq!(token.block_count(), 1);
    let source = token.print_block_source(0).expect("source");
    assert!(source.contains(r#"kind("session")"#), "{source}");
    assert!(
        source.contains(&format!(r#"user("{user_id}")"#)),
        "{source}"
    );
    assert!(
        source.contains(&format!(r#"session("{session_id}")"#)),
        "{source}"
    );
    assert!(source.contains("check if time($t), $t <"), "{source}");
}

#[test]
fn api_key_round_trip_with_permissions() {
    let issuer = issuer();
    let (org_id, key_id) = (id(), id());
    let issued = issuer
        .issue_api_key(
            org_id,
            key_id,
            &keys(&["people.read", "events.write", "people.read"]),
            EXP,
        )
        .expect("issue");
    assert_eq!(issued.expires_at, EXP_SECONDS);
    assert_eq!(issued.revocation_ids.len(), 2);
    assert_eq!(issued.revocation_ids[0], issued.revocation_id);

    let verified = issuer
        .verify_for_org(&issued.token, BEFORE, Some(org_id))
        .expect("verify");
    assert_eq!(
        verified.principal,
        Principal::ApiKey {
            org_id,
            key_id,
            permissions: keys(&["events.write", "people.read"]),
        }
    );
    assert_eq!(verified.expires_at, Some(EXP_SECONDS));
    assert_eq!(verified.revocation_ids, issued.revocation_ids);
}

#[test]
fn api_key_without_permissions_round_trips() {
    let issuer = issuer();
    let (org_id, key_id) = (id(), id());
    let issued = issuer
        .issue_api_key(org_id, key_id, &[], EXP)
        .expect("issue");
    let verified = issuer
        .verify_for_org(&issued.token, BEFORE, Some(org_id))
        .expect("verify");
    assert_eq!(
        verified.principal,
        Principal::ApiKey {
            org_id,
            key_id,
            permissions: vec![],
        }
    );
}

#[test]
fn api_key_is_attenuated_by_a_second_block_whose_checks_are_enforced() {
    let issuer = issuer();
    let (org_id, other_org) = (id(), id());
    let issued = issuer
        .issue_api_key(org_id, id(), &keys(&["people.read"]), EXP)
        .expect("issue");
    let token = parse(&issuer, &issued.token);
    assert_eq!(token.block_count(), 2);
    assert!(token.external_public_keys().iter().all(Option::is_none));

    let authority = token.print_block_source(0).expect("block 0");
    assert!(authority.contains(r#"kind("api_key")"#), "{authority}");
    assert!(
        authority.contains(r#"permission("people.read")"#),
        "{authority}"
    );
    assert!(!authority.contains("check"), "{authority}");
    let attenuation = token.print_block_source(1).expect("block 1");
    assert!(
        attenuation.contains("check if time($t), $t <"),
        "{attenuation}"
    );
    assert!(
        attenuation.contains(&format!(r#"check if operation_org("{org_id}")"#)),
        "{attenuation}"
    );

    // A bare authorizer that allows everything: only block 1's checks can refuse.
    let run = |org: Uuid, now: OffsetDateTime| {
        let (org, now) = (org.to_string(), date(now));
        authorizer!(
            r#"
            time({now});
            operation_org({org});
            allow if true;
            "#
        )
        .set_limits(issuer.limits().to_biscuit())
        .build(&token)
        .expect("authorizer")
        .authorize()
    };
    let failed = |result: Result<usize, error::Token>| match result {
        Err(error::Token::FailedLogic(Logic::Unauthorized { checks, .. })) => checks
            .into_iter()
            .map(|c| match c {
                FailedCheck::Block(FailedBlockCheck {
                    block_id, check_id, ..
                }) => (block_id, check_id),
                FailedCheck::Authorizer(_) => panic!("authorizer check failed"),
            })
            .collect::<Vec<_>>(),
        other => panic!("unexpected result {other:?}"),
    };
    assert!(run(org_id, BEFORE).is_ok());
    assert_eq!(failed(run(other_org, BEFORE)), vec![(1, 1)]);
    assert_eq!(failed(run(org_id, AFTER)), vec![(1, 0)]);
}

#[test]
fn api_key_on_another_org_or_no_org_is_unauthorized() {
    let issuer = issuer();
    let org_id = id();
    let issued = issuer
        .issue_api_key(org_id, id(), &keys(&["people.read"]), EXP)
        .expect("issue");
    assert_eq!(
        issuer.verify_for_org(&issued.token, BEFORE, Some(id())),
        Err(TokenError::Unauthorized)
    );
    assert_eq!(
        issuer.verify(&issued.token, BEFORE),
        Err(TokenError::Unauthorized)
    );
    assert!(
        issuer
            .verify_for_org(&issued.token, BEFORE, Some(org_id))
            .is_ok()
    );
}

#[test]
fn token_signed_by_another_key_is_invalid_signature() {
    let (issuer, stranger) = (issuer(), issuer());
    let org_id = id();
    let session = stranger
        .issue_session(id(), id(), EXP, false)
        .expect("issue");
    let api_key = stranger
        .issue_api_key(org_id, id(), &keys(&["people.read"]), EXP)
        .expect("issue");
    assert_eq!(
        issuer.verify(&session.token, BEFORE),
        Err(TokenError::InvalidSignature)
    );
    assert_eq!(
        issuer.verify_for_org(&api_key.token, BEFORE, Some(org_id)),
        Err(TokenError::InvalidSignature)
    );
}

/// Minimal URL-safe base64 (with padding, as Biscuit writes it) so tests can tamper with
/// the decoded bytes.
fn b64_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = URL_SAFE_ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64");
        bits = (bits << 6) | u32::try_from(value).expect("6 bits");
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).expect("byte"));
        }
    }
    out
}

fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let n = (u32::from(group[0]) << 16) | (u32::from(group[1]) << 8) | u32::from(group[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                let index = usize::try_from((n >> (18 - 6 * k)) & 63).expect("index");
                out.push(char::from(URL_SAFE_ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Flips one bit in every `stride`-th byte of each token (a different bit from byte to
/// byte, all eight with stride 1 and `all_bits`), and tries truncations and extensions:
/// never accepted, always malformed or a bad signature.
fn assert_tampering_refused(stride: usize, all_bits: bool) {
    let issuer = issuer();
    let org_id = id();
    let tokens = [
        issuer.issue_session(id(), id(), EXP, false).expect("issue"),
        issuer
            .issue_api_key(org_id, id(), &keys(&["people.read"]), EXP)
            .expect("issue"),
    ];
    for issued in &tokens {
        let original = b64_decode(&issued.token);
        assert_eq!(b64_encode(&original), issued.token, "test codec");
        let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
        for i in (0..original.len()).step_by(stride) {
            let bits: Vec<u8> = if all_bits {
                (0..8).collect()
            } else {
                vec![u8::try_from(i % 8).expect("bit")]
            };
            for bit in bits {
                let mut bytes = original.clone();
                bytes[i] ^= 1 << bit;
                variants.push((format!("byte {i} bit {bit}"), bytes));
            }
        }
        for cut in [1, 2, 10, original.len() / 2] {
            let bytes = original[..original.len() - cut].to_vec();
            variants.push((format!("cut {cut}"), bytes));
        }
        variants.push(("suffix".into(), [&original[..], &[0x0a, 0x00]].concat()));
        variants.push(("prefix".into(), [&[0x08, 0x01], &original[..]].concat()));

        for (what, bytes) in variants {
            let text = b64_encode(&bytes);
            match issuer.verify_for_org(&text, BEFORE, Some(org_id)) {
                Err(TokenError::Malformed | TokenError::InvalidSignature) => {}
                other => panic!("tampered token ({what}) gave {other:?}"),
            }
        }
        // Text-level damage: a character outside the alphabet, a dropped character.
        let mut text = issued.token.clone();
        text.replace_range(5..6, "*");
        assert_eq!(issuer.verify(&text, BEFORE), Err(TokenError::Malformed));
        let mut text = issued.token.clone();
        text.remove(7);
        assert!(matches!(
            issuer.verify(&text, BEFORE),
            Err(TokenError::Malformed | TokenError::InvalidSignature)
        ));
    }
}

#[test]
fn tampering_with_bytes_never_verifies() {
    assert_tampering_refused(3, false);
}

/// Every bit of every byte (slow unoptimised: `cargo test -p credentials -- --ignored`).
#[test]
#[ignore = "exhaustive, about two minutes unoptimised"]
fn tampering_with_any_bit_never_verifies() {
    assert_tampering_refused(1, true);
}

/// The envelope around the signed blocks admits variants that decode to the same token;
/// they are refused too.
#[test]
fn non_canonical_encodings_are_refused() {
    let issuer = issuer();
    let user = id().to_string();
    let build = |root_key_id: Option<u32>| {
        let mut builder = biscuit!(
            r#"
            kind("session");
            user({user});
            session({user});
            expires(2100-01-01T00:00:00Z);
            "#,
            user = user.as_str(),
        );
        if let Some(hint) = root_key_id {
            builder = builder.root_key_id(hint);
        }
        builder
            .build(issuer.key.key_pair())
            .expect("build")
            .to_base64()
            .expect("encode")
    };
    // Our own content, signed by our key, but with the (unsigned) root key id hint.
    assert_eq!(
        issuer.verify(&build(Some(7)), BEFORE),
        Err(TokenError::Malformed)
    );
    let plain = build(None);
    assert!(issuer.verify(&plain, BEFORE).is_ok());
    // In the next key's envelope, `algorithm = 0` (Ed25519, the default) rewritten as an
    // unknown field 3 with the same value decodes to the same token with valid signatures.
    let bytes = b64_decode(&plain);
    let at = bytes
        .windows(4)
        .position(|w| w == [0x12, 0x24, 0x08, 0x00])
        .expect("authority next key");
    let mut variant = bytes.clone();
    variant[at + 2] = 0x18;
    let variant = b64_encode(&variant);
    assert!(
        Biscuit::from_base64(&variant, issuer.public).is_ok(),
        "the envelope variant still parses"
    );
    assert_eq!(issuer.verify(&variant, BEFORE), Err(TokenError::Malformed));
    // Without the padding the base64 text differs from the canonical one.
    let unpadded = plain.trim_end_matches('=');
    if unpadded != plain {
        assert_eq!(issuer.verify(unpadded, BEFORE), Err(TokenError::Malformed));
    }
}

#[test]
fn garbage_is_malformed() {
    let issuer = issuer();
    let too_long = "A".repeat(MAX_TOKEN_LEN + 4);
    for text in ["", "not a token", "AAAA", "====", &too_long] {
        assert_eq!(issuer.verify(text, BEFORE), Err(TokenError::Malformed));
    }
}

#[test]
fn expired_session_is_expired() {
    let issuer = issuer();
    let issued = issuer.issue_session(id(), id(), EXP, false).expect("issue");
    let last_valid = datetime!(2029-12-31 23:59:59.999 UTC);
    assert!(issuer.verify(&issued.token, last_valid).is_ok());
    assert_eq!(
        issuer.verify(&issued.token, EXP_SECONDS),
        Err(TokenError::Expired)
    );
    assert_eq!(issuer.verify(&issued.token, EXP), Err(TokenError::Expired));
    assert_eq!(
        issuer.verify(&issued.token, AFTER),
        Err(TokenError::Expired)
    );
}

#[test]
fn expired_api_key_is_expired_whatever_the_org() {
    let issuer = issuer();
    let org_id = id();
    let issued = issuer
        .issue_api_key(org_id, id(), &keys(&["people.read"]), EXP)
        .expect("issue");
    for org in [Some(org_id), Some(id()), None] {
        assert_eq!(
            issuer.verify_for_org(&issued.token, AFTER, org),
            Err(TokenError::Expired)
        );
    }
}

#[test]
fn revocation_ids_are_stable_and_unique() {
    let issuer = issuer();
    let (user_id, session_id) = (id(), id());
    let a = issuer
        .issue_session(user_id, session_id, EXP, false)
        .expect("issue");
    let b = issuer
        .issue_session(user_id, session_id, EXP, false)
        .expect("issue");
    assert_ne!(a.revocation_id, b.revocation_id);
    assert_eq!(a.revocation_id.len(), 128, "hex of an Ed25519 signature");
    for _ in 0..2 {
        let verified = issuer.verify(&a.token, BEFORE).expect("verify");
        assert_eq!(verified.revocation_ids, a.revocation_ids);
    }
    assert_eq!(
        parse(&issuer, &a.token)
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect::<Vec<_>>(),
        a.revocation_ids
    );
}

#[test]
fn appended_blocks_cannot_grant_or_impersonate() {
    let issuer = issuer();
    let (org_id, key_id, other) = (id(), id(), id().to_string());
    let issued = issuer
        .issue_api_key(org_id, key_id, &keys(&["people.read"]), EXP)
        .expect("issue");
    let forged = parse(&issuer, &issued.token)
        .append(block!(
            r#"
            permission("users.remove");
            permission("users.remove") <- org($org);
            org({other});
            api_key({other});
            kind("session");
            user({other});
            session({other});
            expires(2100-01-01T00:00:00Z);
            "#,
            other = other.as_str(),
        ))
        .expect("append")
        .to_base64()
        .expect("encode");

    let verified = issuer
        .verify_for_org(&forged, BEFORE, Some(org_id))
        .expect("still a valid, if attenuated, token");
    assert_eq!(
        verified.principal,
        Principal::ApiKey {
            org_id,
            key_id,
            permissions: keys(&["people.read"]),
        }
    );
    assert_eq!(verified.revocation_ids.len(), 3);
    assert_eq!(verified.revocation_ids[..2], issued.revocation_ids[..]);
    // Nor can an appended block extend the expiry.
    assert_eq!(
        issuer.verify_for_org(&forged, AFTER, Some(org_id)),
        Err(TokenError::Expired)
    );

    // Same for a session: another user's facts in an appended block are ignored.
    let (user_id, session_id) = (id(), id());
    let session = issuer
        .issue_session(user_id, session_id, EXP, false)
        .expect("issue");
    let forged = parse(&issuer, &session.token)
        .append(block!(r#"user({other}); session({other});"#))
        .expect("append")
        .to_base64()
        .expect("encode");
    assert_eq!(
        issuer.verify(&forged, BEFORE).expect("verify").principal,
        Principal::Session {
            user_id,
            session_id,
            second_factor: false,
        }
    );
}

#[test]
fn holder_attenuation_is_enforced() {
    let issuer = issuer();
    let issued = issuer.issue_session(id(), id(), EXP, false).expect("issue");
    let sooner = date(datetime!(2029-01-01 00:00 UTC));
    let attenuated = parse(&issuer, &issued.token)
        .append(block!(r#"check if time($t), $t < {sooner};"#))
        .expect("append")
        .to_base64()
        .expect("encode");
    let verified = issuer
        .verify(&attenuated, datetime!(2028-06-01 00:00 UTC))
        .expect("verify before the holder's limit");
    assert_eq!(
        verified.authority_revocation_id(),
        Some(issued.revocation_id.as_str())
    );
    assert_eq!(
        issuer.verify(&attenuated, BEFORE),
        Err(TokenError::Unauthorized)
    );
}

#[test]
fn hostile_rules_hit_the_run_limits() {
    let issuer = issuer();
    let issued = issuer.issue_session(id(), id(), EXP, false).expect("issue");
    let mut bomb = block!(r#"cube($x, $y, $z) <- a($x), a($y), a($z);"#);
    for i in 0..20 {
        bomb = bomb
            .fact(builder::fact("a", &[builder::int(i)]))
            .expect("fact");
    }
    let hostile = parse(&issuer, &issued.token)
        .append(bomb)
        .expect("append")
        .to_base64()
        .expect("encode");
    assert_eq!(
        issuer.verify(&hostile, BEFORE),
        Err(TokenError::Unauthorized)
    );
}

#[test]
fn issuing_needs_an_expiry_after_1970() {
    let issuer = issuer();
    let before_epoch = datetime!(1969-12-31 23:59 UTC);
    assert!(matches!(
        issuer.issue_session(id(), id(), before_epoch, false),
        Err(TokenError::Issue(_))
    ));
    assert!(matches!(
        issuer.issue_api_key(id(), id(), &[], before_epoch),
        Err(TokenError::Issue(_))
    ));
}

#[test]
fn default_limits_are_tight() {
    let issuer = TokenIssuer::new(Arc::new(SigningKey::generate()));
    assert_eq!(
        issuer.limits(),
        VerifyLimits {
            max_facts: 1000,
            max_iterations: 100,
            max_time: DEFAULT_MAX_TIME,
        }
    );
    // A backstop for preempted threads, not the bound on a hostile token's work (the
    // facts and iterations are: `hostile_rules_hit_the_run_limits`).
    assert_eq!(DEFAULT_MAX_TIME, Duration::from_millis(50));
}

#[test]
fn hash_token_is_sha256() {
    assert_eq!(
        hex::encode(hash_token("abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_ne!(hash_token("a"), hash_token("b"));
}

#[test]
fn debug_output_never_shows_the_token() {
    let issuer = issuer();
    let issued = issuer.issue_session(id(), id(), EXP, false).expect("issue");
    let shown = format!("{issued:?} {issuer:?}");
    assert!(!shown.contains(&issued.token));
    assert!(shown.contains("<redacted>"));
    assert!(shown.contains(&issuer.key.public_hex()));
}

#[test]
fn the_second_factor_is_read_from_the_authority_block_only() {
    let issuer = issuer();
    let (user_id, session_id) = (id(), id());
    let with = issuer
        .issue_session(user_id, session_id, EXP, true)
        .expect("issue");
    assert_eq!(
        issuer
            .verify(&with.token, BEFORE)
            .expect("verify")
            .principal,
        Principal::Session {
            user_id,
            session_id,
            second_factor: true,
        }
    );
    // A holder cannot claim a second factor by appending the fact.
    let without = issuer
        .issue_session(user_id, session_id, EXP, false)
        .expect("issue");
    let forged = parse(&issuer, &without.token)
        .append(block!(r#"amr("otp");"#))
        .expect("append")
        .to_base64()
        .expect("encode");
    assert_eq!(
        issuer.verify(&forged, BEFORE).expect("verify").principal,
        Principal::Session {
            user_id,
            session_id,
            second_factor: false,
        }
    );
}
