//! The PTO Connect API server: wires the domain services and adapters behind
//! actix-web. `main.rs` is a thin shell around [`startup::Application`].

pub mod account_views;
pub mod auth;
pub mod authz;
pub mod cache_warming;
pub mod config;
pub mod dispatch;
pub mod event_hub;
pub mod http;
pub mod mailer;
pub mod routes;
pub mod search_index;
pub mod startup;
pub mod state;
pub mod telemetry;
