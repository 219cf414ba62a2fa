//! Live collaboration: WebSocket connections ([`connection`]), the rooms they join
//! ([`room`]) and the registry of loaded rooms ([`rooms`]).
//!
//! An update enters in [`connection`], is checked by the engine's inspector, relayed to the
//! room's other connections and stored in the durable log by its [`room`], which
//! acknowledges it to its sender and publishes it to the other nodes once durable.

pub mod connection;
pub mod meter;
pub mod room;
pub mod rooms;
pub mod sessions;
pub mod shared;
pub mod socket;
pub mod views;
