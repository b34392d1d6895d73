//! API tests: the real app, driven in-process, against every configured backend.
//!
//! Each test runs once per backend (`sqlite::…` always; `postgres::…` when
//! `TEST_DATABASE_URL` is set, which `.ci/run` does), each on its own fresh database.

#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "test code")]

mod helpers;

mod account_views;
mod accounts;
mod api_keys;
mod audit_logs;
mod audit_more;
mod auth;
mod backup;
mod contract;
mod data_policy;
mod directory;
mod directory_cache;
mod districts;
mod docs;
mod edge;
mod erasure;
mod errors;
mod events;
mod handout;
mod hardening;
mod health;
mod idempotency;
mod invitations;
mod isolation;
mod journeys;
mod mail;
mod member_io;
mod member_search;
mod members;
mod notifications;
mod observability;
mod org_resources;
mod orgs;
mod outage;
mod permissions;
mod privacy;
mod rate_limits;
mod register;
mod rls;
mod roles;
mod security_review;
mod webhooks;
mod write_path;
