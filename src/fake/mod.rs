//! The built-in fake Focus API (skeleton; filled in by the fake work).
