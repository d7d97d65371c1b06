//! Herald's durable state.
